"""What the receivers saw: each message body carries its key and its send time.

A body is ``KEY|NS`` where ``NS`` is ``time.monotonic_ns()`` just before the
send started (CLOCK_MONOTONIC is one clock for every process of the machine,
so worker processes and receivers agree). A receipt's latency is the receive
time minus ``NS``; bodies that are not ours are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

__all__ = ["Receipts", "percentile", "stamp"]

_SEP = "|"


def stamp(key: str) -> str:
    """The body of a message with ``key``, sent now."""
    return f"{key}{_SEP}{time.monotonic_ns()}"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Receipts:
    """Per key: how many receivers got it and the latest latency (ns); a waiter for a goal."""

    def __init__(self, prefix: str = "") -> None:
        self.reset(prefix)
        self._goal: Callable[[], bool] | None = None
        self._reached = asyncio.Event()

    def reset(self, prefix: str) -> None:
        """Forget everything; count only keys starting with ``prefix`` from now on."""
        self.prefix = prefix
        self.by_key: dict[str, list[int]] = {}
        """key -> [receipts, latest latency ns, first latency ns, first receipt's monotonic ns]."""
        self.total = 0
        self.last_ns = 0

    def add(self, body: str) -> str | None:
        """Record the receipt of ``body``; its key, or None if it is not one of ours."""
        key, sep, sent = body.rpartition(_SEP)
        if not sep or not key.startswith(self.prefix) or not sent.isdigit():
            return None
        now = time.monotonic_ns()
        latency = now - int(sent)
        entry = self.by_key.get(key)
        if entry is None:
            self.by_key[key] = [1, latency, latency, now]
        else:
            entry[0] += 1
            entry[1] = latency
        self.total += 1
        self.last_ns = now
        self.check()
        return key

    def check(self) -> None:
        """Check the goal of ``wait`` now (something else it depends on changed)."""
        if self._goal is not None and self._goal():
            self._reached.set()

    @property
    def distinct(self) -> int:
        return len(self.by_key)

    def duplicates(self) -> int:
        """Receipts beyond the first, for messages that have one recipient."""
        return self.total - len(self.by_key)

    def first_latencies_ms(self, keys: set[str] | None = None) -> list[float]:
        """Latency of each message's first receipt (p2p: its only one)."""
        return [e[2] / 1e6 for k, e in self.by_key.items() if keys is None or k in keys]

    def last_latencies_ms(self, keys: set[str] | None = None) -> list[float]:
        """Latency of each message's latest receipt (fan-out: time to all members)."""
        return [e[1] / 1e6 for k, e in self.by_key.items() if keys is None or k in keys]

    async def wait(self, goal: Callable[[], bool], timeout: float) -> bool:
        """Until ``goal()`` holds (checked at each receipt), at most ``timeout`` s; whether it did."""
        if goal():
            return True
        self._goal, self._reached = goal, asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._reached.wait()
        finally:
            self._goal = None
        return goal()
