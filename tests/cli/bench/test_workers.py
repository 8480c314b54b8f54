"""``cim bench p2p --procs``: the generator in two processes, each with its CPU figure."""

from __future__ import annotations

import pytest

from cim_cli.bench.target import CimTarget
from cim_cli.bench.workers import measure_procs
from tests.cli.bench.bench_run import cluster_cpu_present

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_two_generator_processes_merge_their_figures(cim: CimTarget) -> None:
    run = await measure_procs(cim, receivers=6, procs=2, concurrency=4, duration=1.0, grace=5.0)
    figures = run.figures
    assert figures["sent"] > 0 and figures["delivered"] == figures["sent"] and figures["lost"] == 0
    assert 0 < figures["p50 ms"] <= figures["p99 ms"]
    assert run.notes["procs"] == 2
    assert run.cpu_us["generator-1"] > 0 and run.cpu_us["generator-2"] > 0
    cluster_cpu_present(run.cpu_us, nodes=2)


async def test_more_processes_than_senders_is_refused(cim: CimTarget) -> None:
    with pytest.raises(ValueError, match="--procs"):
        await measure_procs(cim, receivers=6, procs=3, concurrency=2, duration=1.0, grace=1.0)
