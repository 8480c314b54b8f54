"""``cim bench idle`` smoke test: every connection logs in on one node; memory per connection."""

from __future__ import annotations

import argparse

import pytest

from cim_cli.bench import idle
from cim_cli.bench.target import CimTarget
from tests.cli.bench.bench_run import cluster_cpu_present

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_idle_connections_on_one_node(cim: CimTarget) -> None:
    report = await idle.run(cim, argparse.Namespace(connections=200))
    (run,) = report.runs
    figures = run.figures
    assert figures["connections"] == 200
    assert figures["connect+login/s"] > 0
    assert figures["node RSS after KiB"] >= figures["node RSS before KiB"] > 0
    assert figures["RSS KiB/connection"] >= 0
    cluster_cpu_present(run.cpu_us, nodes=2)
    node = report.params["node"]
    other = "node-2" if node == "node-1" else "node-1"
    # the logins went to the one node (CPU is counted in 10 ms ticks: 200 logins show on it)
    assert run.cpu_us[node] > 0 and run.cpu_us[node] >= run.cpu_us[other]
