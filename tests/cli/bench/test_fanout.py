"""``cim bench fanout`` smoke tests: a stored group and a push to everyone online, nothing lost."""

from __future__ import annotations

import argparse

import pytest

from cim_cli.bench import fanout
from cim_cli.bench.target import BASELINES, Baseline, CimTarget
from tests.cli.bench.bench_run import cluster_cpu_present

pytestmark = pytest.mark.asyncio(loop_scope="package")


@pytest.mark.parametrize("push_all", [False, True])
async def test_fanout_reaches_every_member(cim: CimTarget, push_all: bool) -> None:
    args = argparse.Namespace(members=8, bursts=2, burst_size=3, push_all=push_all, grace=5.0)
    run = await fanout.run(cim, args)
    report = fanout.new_report(args)
    report.runs.append(run)
    assert report.table()[0].startswith("fanout --push-all: members 8" if push_all else "fanout: members 8")
    figures = run.figures
    assert figures["messages"] == 6 and figures["refused"] == 0
    assert figures["deliveries"] == 6 * 8 and figures["lost"] == 0
    assert figures["deliveries/s"] > 0
    assert 0 < figures["to all p50 ms"] <= figures["to all p99 ms"]
    assert run.unit == "delivery"
    cluster_cpu_present(run.cpu_us, nodes=2)


@pytest.mark.parametrize("kind", BASELINES)
async def test_fanout_baselines_reach_every_member(kind: str) -> None:
    args = argparse.Namespace(members=8, bursts=2, burst_size=2, push_all=False, grace=5.0)
    async with Baseline(kind) as target:
        run = await fanout.run(target, args)
    assert run.target == kind
    assert run.figures["deliveries"] == 4 * 8 and run.figures["lost"] == 0 and run.figures["refused"] == 0
    assert {"generator", "nats-server", "relay", kind} <= run.cpu_us.keys()
    assert ("redis-server" in run.cpu_us) == (kind == "ideal")
