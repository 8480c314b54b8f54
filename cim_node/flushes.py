"""The end-of-turn write of every connection that queued bytes in this loop turn.

A connection joins its frames of one loop turn into one ``transport.write``. Scheduling that
write with a ``call_soon`` of its own cost a callback handle per connection per turn -- in a
group fan-out, one per member, about what the rest of the delivery costs in Python. Here the
connections with something queued wait in one list and one callback writes them all.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Flushes", "Flushing"]


class Flushing(Protocol):
    def flush(self) -> None:
        """Write what is queued (nothing: no-op)."""


class Flushes:
    """Connections to flush at the end of this loop turn, in the order they queued."""

    __slots__ = ("_due", "_handle")

    def __init__(self) -> None:
        self._due: list[Flushing] = []
        self._handle: asyncio.Handle | None = None

    def add(self, conn: Flushing) -> None:
        """Flush ``conn`` once this loop turn is over (the caller adds it once per turn)."""
        self._due.append(conn)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._handle = None
        due, self._due = self._due, []
        for conn in due:
            conn.flush()
