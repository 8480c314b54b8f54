"""The sweep's chart: a PNG from the reports, and a clear message when matplotlib is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cim_cli.bench import chart
from cim_cli.bench.report import Report, Run
from cim_cli.bench.runner import run_bench
from cim_cli.main import build_parser


def _report(concurrency: int) -> Report:
    runs = [
        Run(t, "message", figures={"sent/s": 100.0 * concurrency, "p99 ms": 5.0}) for t in ("cim", "ideal")
    ]
    return Report("sweep", {"concurrency": concurrency}, runs)


def test_draws_throughput_and_p99_against_concurrency(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    chart.draw([_report(1), _report(4)], png, "title")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_sweep_stops_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name)
    )
    args = build_parser().parse_args(["bench", "sweep", "--png", str(tmp_path / "x.png")])
    assert run_bench(args) == 1
    assert "pip install 'cim[bench]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
