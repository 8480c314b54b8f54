"""The sweep's chart: throughput and p99 against concurrency, one line per target, into a PNG.

matplotlib is an optional extra (``pip install 'cim[bench]'``); ``require``
says so clearly before a sweep spends minutes measuring.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cim_cli.bench.report import Report

__all__ = ["MissingMatplotlib", "draw", "require"]


class MissingMatplotlib(RuntimeError):
    """``--png`` without matplotlib installed."""


def require() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingMatplotlib(
            "--png needs matplotlib: pip install 'cim[bench]' (or: pip install matplotlib)"
        )


def draw(reports: list[Report], png: Path, title: str) -> None:
    """One report per concurrency level (``params["concurrency"]``), each with a run per target."""
    require()
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    levels = [r.params["concurrency"] for r in reports]
    targets = [run.target for run in reports[0].runs]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for target in targets:
        runs = [next(run for run in r.runs if run.target == target) for r in reports]
        top.plot(levels, [run.figures["sent/s"] for run in runs], marker="o", label=target)
        bottom.plot(levels, [run.figures["p99 ms"] for run in runs], marker="o", label=target)
    top.set_ylabel("accepted sends/s")
    bottom.set_ylabel("p99 latency, ms (log)")
    bottom.set_yscale("log")
    bottom.set_xlabel("concurrent senders (log)")
    for ax in (top, bottom):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.grid(True, alpha=0.3)
        ax.legend()
    top.set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
