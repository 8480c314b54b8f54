"""``cim bench p2p`` smoke test: tiny numbers, its own cluster and the baseline, nothing lost."""

from __future__ import annotations

import asyncio
import json
import os
import sys


async def test_bench_p2p_smoke() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cim_cli", "bench", "p2p", "--users", "4", "--concurrency", "4"],
        *["--duration", "1.5", "--baseline", "--json"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(50):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].split() == ["sent/s", "delivered/s", "p50", "ms", "p99", "ms", "sent", "lost", "errors"]
    assert lines[3].startswith("cim / baseline throughput:")
    cim, baseline = json.loads(lines[-1])
    for result in (cim, baseline):
        assert result["sent"] > 0 and result["delivered"] == result["sent"]
        assert result["lost"] == 0 and result["duplicates"] == 0 and result["errors"] == {}
        assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert sorted(cim["nodes"]) == ["node-1", "node-2"]


async def test_bench_p2p_over_websockets_loses_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cim_cli", "bench", "p2p", "--users", "4", "--concurrency", "4"],
        *["--duration", "1", "--transport", "ws", "--json"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(50):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    (cim,) = json.loads(out.decode().splitlines()[-1])
    assert cim["sent"] > 0 and cim["delivered"] == cim["sent"] and cim["lost"] == 0
