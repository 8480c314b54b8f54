"""The summary table: a column per target, cim's ratios to each baseline, CPU rows per process."""

from __future__ import annotations

import json
from pathlib import Path

from cim_cli.bench.report import Report, Run, write_json


def _run(target: str, sent_per_s: float, cpu: dict[str, float]) -> Run:
    run = Run(target, "message", figures={"sent/s": sent_per_s, "lost": 0})
    run.set_cpu(cpu, units=1000)
    return run


def test_cpu_per_unit_and_cluster_sum_leave_the_generators_out() -> None:
    run = _run("cim", 100.0, {"generator": 0.05, "generator-1": 0.01, "route": 1.0, "node-1": 0.2})
    assert run.cpu_us == {
        "generator": 50.0,
        "generator-1": 10.0,
        "route": 1000.0,
        "node-1": 200.0,
        "cluster": 1200.0,
    }


def test_table_has_ratio_columns_and_a_row_per_process() -> None:
    report = Report(
        "p2p", {"receivers": 10}, [_run("cim", 100.0, {"route": 1.0}), _run("bare", 400.0, {"bare": 0.5})]
    )
    lines = report.table()
    assert lines[0] == "p2p: receivers 10"
    assert lines[1].split() == ["cim", "bare", "cim/bare"]
    rows = {line.split("  ")[0].strip(): line.split() for line in lines[2:]}
    assert rows["sent/s"][-3:] == ["100.0", "400.0", "0.25"]
    assert rows["lost"][-3:] == ["0", "0", "-"]
    assert rows["cpu us/message route"][-3:] == ["1,000", "-", "-"]
    assert rows["cpu us/message cluster"][-3:] == ["1,000", "500.0", "2.00"]


def test_json_holds_every_figure(tmp_path: Path) -> None:
    report = Report("idle", {"connections": 3}, [_run("cim", 1.0, {"node-1": 0.3})])
    write_json(tmp_path / "out.json", [report])
    (data,) = json.loads((tmp_path / "out.json").read_text())
    assert data["scenario"] == "idle" and data["runs"][0]["cpu_us"]["node-1"] == 300.0
