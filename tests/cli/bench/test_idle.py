"""``cim bench idle`` smoke test: every connection logs in on the one node; memory per connection."""

from __future__ import annotations

from pathlib import Path

from tests.cli.bench.bench_run import cluster_cpu_present, run_bench


async def test_idle_connections_on_one_node(tmp_path: Path) -> None:
    lines, (report,) = await run_bench(tmp_path, "idle", "--connections", "40")
    assert lines[0] == "idle: connections 40"
    (run,) = report["runs"]
    figures = run["figures"]
    assert figures["connections"] == 40
    assert figures["connect+login/s"] > 0
    assert figures["node RSS after KiB"] >= figures["node RSS before KiB"] > 0
    assert figures["RSS KiB/connection"] >= 0
    cluster_cpu_present(run["cpu_us"], nodes=1)
    assert run["cpu_us"]["node-1"] > 0
