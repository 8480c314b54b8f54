"""``cim bench p2p`` and ``sweep`` smoke tests, as a user runs them: the command, its table and JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.bench.bench_run import cluster_cpu_present, run_bench

pytestmark = pytest.mark.asyncio(loop_scope="package")


def _sane(run: dict) -> None:
    figures = run["figures"]
    assert figures["sent"] > 0 and figures["delivered"] == figures["sent"]
    assert figures["lost"] == 0 and figures["duplicates"] == 0 and figures["errors"] == 0
    assert figures["sent/s"] > 0 and figures["delivered/s"] > 0
    assert 0 < figures["p50 ms"] <= figures["p95 ms"] <= figures["p99 ms"]


async def test_p2p_beside_both_baselines(tmp_path: Path) -> None:
    lines, reports = await run_bench(
        tmp_path,
        "p2p",
        "--receivers",
        "6",
        "--concurrency",
        "4",
        "--duration",
        "1",
        "--baseline",
    )
    assert lines[0].startswith("p2p: receivers 6, concurrency 4")
    assert lines[1].split() == ["cim", "bare", "ideal", "cim/bare", "cim/ideal"]
    assert any(line.startswith("cpu us/message route") for line in lines)
    (report,) = reports
    cim, bare, ideal = report["runs"]
    assert [r["target"] for r in report["runs"]] == ["cim", "bare", "ideal"]
    for run in (cim, bare, ideal):
        _sane(run)
        assert run["cpu_us"]["generator"] > 0
    cluster_cpu_present(cim["cpu_us"], nodes=2)
    assert cim["cpu_us"]["route"] > 0
    assert {"nats-server", "relay", "bare"} <= bare["cpu_us"].keys()
    assert {"nats-server", "redis-server", "relay", "ideal"} <= ideal["cpu_us"].keys()


async def test_sweep_draws_a_chart(tmp_path: Path) -> None:
    png = tmp_path / "sweep.png"
    lines, reports = await run_bench(
        tmp_path, "sweep", "--receivers", "3", "--levels", "1,2", "--point-duration", "0.3", "--png", str(png)
    )
    assert [r["params"]["concurrency"] for r in reports] == [1, 2]
    for report in reports:
        (run,) = report["runs"]
        _sane(run)
        cluster_cpu_present(run["cpu_us"], nodes=2)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert sum(line.startswith("sweep: ") for line in lines) == 2


async def test_p2p_over_tls(tmp_path: Path) -> None:
    """``--tls``: the cluster it starts is ``cim up --tls``'s; sends and receipts cross TLS."""
    lines, reports = await run_bench(
        tmp_path, "p2p", "--tls", "--receivers", "4", "--concurrency", "2", "--duration", "1"
    )
    assert lines[0].startswith("p2p: receivers 4, concurrency 2")
    (report,) = reports
    _sane(report["runs"][0])
