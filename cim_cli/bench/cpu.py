"""CPU time and memory of named processes, from ``/proc`` (Linux).

A process's CPU is ``utime + stime`` of ``/proc/PID/stat`` (clock ticks) plus
that of its descendants still running (a route with worker children: the
workers do the work), found through the ``ppid`` field of every
``/proc/*/stat``. A descendant that is itself one of the named processes is
counted under its own name only (the bench process is the parent of the whole
cluster it starts, yet its own figure is the load generator's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CpuWindow", "rss_kib", "sample"]

_TICK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime + stime ticks) of ``pid``, or None if it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _all_stats() -> dict[int, tuple[int, int]]:
    stats = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                stats[int(entry.name)] = found
    return stats


def sample(processes: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process (with its unnamed descendants)."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    named = set(processes.values())

    def tree(pid: int) -> int:
        ticks = stats.get(pid, (0, 0))[1]
        return ticks + sum(tree(c) for c in children.get(pid, []) if c not in named)

    return {name: tree(pid) / _TICK for name, pid in processes.items()}


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


@dataclass
class CpuWindow:
    """CPU seconds of each process between ``start()`` and ``stop()``."""

    processes: dict[str, int]
    used_s: dict[str, float] = field(default_factory=dict)
    _begin: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._begin = sample(self.processes)

    def stop(self) -> dict[str, float]:
        end = sample(self.processes)
        self.used_s = {name: end[name] - self._begin.get(name, 0.0) for name in self.processes}
        return self.used_s
