"""``cim bench fanout`` smoke tests: a stored group and a push to everyone online, nothing lost."""

from __future__ import annotations

import argparse

import pytest

from cim_cli.bench import fanout
from cim_cli.bench.target import CimTarget
from tests.cli.bench.bench_run import cluster_cpu_present

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest.mark.parametrize("push_all", [False, True])
async def test_fanout_reaches_every_member(cim: CimTarget, push_all: bool) -> None:
    args = argparse.Namespace(members=8, bursts=2, burst_size=3, push_all=push_all, grace=5.0)
    report = await fanout.run(cim, args)
    assert report.table()[0].startswith("fanout --push-all: members 8" if push_all else "fanout: members 8")
    (run,) = report.runs
    figures = run.figures
    assert figures["messages"] == 6 and figures["refused"] == 0
    assert figures["deliveries"] == 6 * 8 and figures["lost"] == 0
    assert figures["deliveries/s"] > 0
    assert 0 < figures["to all p50 ms"] <= figures["to all p99 ms"]
    assert run.unit == "delivery"
    cluster_cpu_present(run.cpu_us, nodes=2)
