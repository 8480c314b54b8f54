"""Helpers of the ``cim bench`` tests: run the command as a user would, read its JSON file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

BENCH_TIMEOUT_S = 50.0


async def run_bench(tmp_path: Path, *argv: str) -> tuple[list[str], list[dict[str, Any]]]:
    """``cim bench ARGV --json FILE`` in a subprocess (no CIM_* variables): its table lines and JSON."""
    out_file = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cim_cli", "bench", *argv, "--json", str(out_file)],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(BENCH_TIMEOUT_S):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines(), json.loads(out_file.read_text())


def cluster_cpu_present(cpu_us: dict[str, float], nodes: int) -> None:
    """Every process of a bench cluster has a CPU figure, and they add up to ``cluster``."""
    expected = {
        "generator",
        "nats-server",
        "redis-server",
        "route",
        *(f"node-{i}" for i in range(1, nodes + 1)),
    }
    assert expected <= cpu_us.keys()
    assert all(v >= 0 for v in cpu_us.values())
    parts = sum(v for k, v in cpu_us.items() if k not in {"cluster"} and not k.startswith("generator"))
    assert abs(cpu_us["cluster"] - parts) < 1.0
