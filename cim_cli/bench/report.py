"""Figures of a bench run, the one summary table per scenario, and the JSON file.

A ``Report`` is one scenario; it holds one ``Run`` per target measured in the
same invocation (``cim`` and, with ``--baseline``, ``bare`` and ``ideal``).
The table has a column per run and, beside cim, its ratio to each baseline.
CPU rows are microseconds of CPU per unit of work (a message, a delivery, a
connection) for each process; ``cluster`` sums every process but the
generator's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GENERATOR", "Report", "Run", "write_json"]

GENERATOR = "generator"


@dataclass
class Run:
    """One target's figures (in print order), CPU per process, and anything worth keeping."""

    target: str
    unit: str
    figures: dict[str, float | int | None] = field(default_factory=dict)
    """None: not reached (e.g. not every client came back before the timeout)."""
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU microseconds per ``unit``, per process, plus ``cluster`` (all but the generator's:
    ``generator`` and, with ``--procs``, ``generator-1``...)."""
    notes: dict[str, Any] = field(default_factory=dict)

    def set_cpu(self, used_s: dict[str, float], units: int) -> None:
        self.cpu_s = {k: round(v, 3) for k, v in used_s.items()}
        per = {k: (v * 1e6 / units if units > 0 else 0.0) for k, v in used_s.items()}
        per["cluster"] = sum(v for k, v in per.items() if not k.startswith(GENERATOR))
        self.cpu_us = {k: round(v, 1) for k, v in per.items()}


@dataclass
class Report:
    """One scenario with its parameters and runs."""

    scenario: str
    params: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    def table(self) -> list[str]:
        """The summary table, one line per figure."""
        names = [r.target for r in self.runs]
        cim = next((r for r in self.runs if r.target == "cim"), None)
        others = [r for r in self.runs if r is not cim] if cim else []
        header = ["", *names, *(f"cim/{o.target}" for o in others)]
        rows = [header]
        for label, get in self._rows():
            values = [get(r) for r in self.runs]
            cells = [label, *(_fmt(v) for v in values)]
            if cim is not None:
                cells += [_ratio(get(cim), get(o)) for o in others]
            rows.append(cells)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        params = ", ".join(f"{k} {v}" for k, v in self.params.items())
        lines = [f"{self.scenario}: {params}"]
        for row in rows:
            lines.append(
                "  ".join(
                    [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
                )
            )
        return lines

    def _rows(self) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = []
        seen: list[str] = []
        for run in self.runs:
            seen += [k for k in run.figures if k not in seen]
        rows += [(k, lambda r, k=k: r.figures.get(k)) for k in seen]
        procs: list[str] = []
        for run in self.runs:
            procs += [k for k in run.cpu_us if k not in procs and k != "cluster"]
        unit = self.runs[0].unit if self.runs else "message"
        rows += [(f"cpu us/{unit} {p}", lambda r, p=p: r.cpu_us.get(p)) for p in (*procs, "cluster")]
        return rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return "-"
    return f"{a / b:.2f}"


def write_json(path: Path, reports: list[Report]) -> None:
    """All figures of all scenarios of this invocation."""
    path.write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
