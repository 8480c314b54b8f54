"""``cim bench reconnect`` smoke test: clients of a SIGKILLed node come back elsewhere, nothing lost.

Run in this process with a 1 s registry refresh, so the dead node leaves the
route's view after ~3 s instead of ~6 s (the command uses the defaults).
"""

from __future__ import annotations

import argparse
import os

import pytest

from cim_cli.bench import reconnect
from cim_cli.bench.target import CimTarget
from tests.cli.bench.bench_run import cluster_cpu_present

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_clients_of_a_killed_node_log_in_elsewhere_and_get_their_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in [v for v in os.environ if v.startswith("CIM_")]:
        monkeypatch.delenv(var)
    async with CimTarget(nodes=2, env={"registry_refresh_s": "1"}) as target:
        report = await reconnect.run(target, argparse.Namespace(clients=12, timeout=30.0, overlap=False))
        assert not target.cluster.node_procs[0].alive
    (run,) = report.runs
    figures = run.figures
    assert figures["clients"] == figures["logged in again"] == 12, figures
    assert figures["sent"] == 12 and figures["refused"] == 0 and figures["lost"] == 0
    assert 0 < figures["done p50 s"] <= figures["done p99 s"] <= figures["all done s"]
    assert 0 < figures["all logged in s"] <= figures["all done s"]
    assert "node-1" not in run.cpu_us  # the killed node has no figure
    cluster_cpu_present(run.cpu_us, nodes=0)
    assert run.cpu_us["node-2"] > 0
