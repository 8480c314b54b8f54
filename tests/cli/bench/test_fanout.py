"""``cim bench fanout`` smoke tests: a stored group and a push to everyone online, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.bench.bench_run import cluster_cpu_present, run_bench


@pytest.mark.parametrize("push_all", [False, True])
async def test_fanout_reaches_every_member(tmp_path: Path, push_all: bool) -> None:
    argv = ["fanout", "--members", "8", "--bursts", "2", "--burst-size", "3"]
    lines, (report,) = await run_bench(tmp_path, *argv, *(["--push-all"] if push_all else []))
    assert lines[0].startswith("fanout --push-all: members 8" if push_all else "fanout: members 8")
    (run,) = report["runs"]
    figures = run["figures"]
    assert figures["messages"] == 6 and figures["refused"] == 0
    assert figures["deliveries"] == 6 * 8 and figures["lost"] == 0
    assert figures["deliveries/s"] > 0
    assert 0 < figures["to all p50 ms"] <= figures["to all p99 ms"]
    assert run["unit"] == "delivery"
    cluster_cpu_present(run["cpu_us"], nodes=2)
