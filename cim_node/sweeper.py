"""One timer wheel for every connection's deadline (login deadline, heartbeat silence).

A timer per connection costs a handle and a heap entry each, and re-arming it on
every frame would cost more. Instead each connection sits in exactly one bucket
of the wheel, the one of its next deadline, and ``run`` looks at the buckets
that fell due once per ``tick_s``. A connection whose deadline passed is asked
``expire(now)``: it closes itself and answers None, or answers the time it
should be looked at again (it was active meanwhile: no work per frame, the new
deadline is computed only when the old one falls due).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Protocol

__all__ = ["Expiring", "Sweeper", "tick_for"]

log = logging.getLogger(__name__)

MAX_TICK_S = 1.0
MIN_TICK_S = 0.01


class Expiring(Protocol):
    def expire(self, now: float) -> float | None:
        """Handle a passed deadline: close (return None) or say when to look again."""
        ...


def tick_for(*deadlines_s: float) -> float:
    """A resolution of a tenth of the shortest deadline, within [10 ms, 1 s]."""
    return min(MAX_TICK_S, max(MIN_TICK_S, min(deadlines_s) / 10))


class Sweeper:
    """Buckets of connections by deadline; ``sweep`` is pure, ``run`` calls it every tick."""

    __slots__ = ("_buckets", "_next", "_tick", "_clock")

    def __init__(self, tick_s: float, clock: Callable[[], float]) -> None:
        self._tick = tick_s
        self._clock = clock
        self._buckets: dict[int, list[Expiring]] = {}
        self._next = self._slot(clock())  # the first bucket not swept yet

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def _slot(self, at: float) -> int:
        return math.ceil(at / self._tick)

    def add(self, item: Expiring, at: float) -> None:
        """Look at ``item`` once ``at`` has passed (an item is in one bucket at a time)."""
        slot = max(self._slot(at), self._next)
        bucket = self._buckets.get(slot)
        if bucket is None:
            self._buckets[slot] = [item]
        else:
            bucket.append(item)

    def sweep(self, now: float) -> int:
        """Expire every item whose bucket is due at ``now``; return how many were looked at."""
        due = math.floor(now / self._tick)
        seen = 0
        while self._next <= due:
            if not self._buckets:  # nothing anywhere: skip the empty slots at once
                self._next = due + 1
                break
            bucket = self._buckets.pop(self._next, None)
            self._next += 1
            if bucket is None:
                continue
            seen += len(bucket)
            for item in bucket:
                try:
                    again = item.expire(now)
                except Exception:  # one broken connection must not stop the wheel
                    log.exception("deadline of %r failed", item)
                    continue
                if again is not None:
                    self.add(item, again)
        return seen

    async def run(self) -> None:
        """Sweep every tick until cancelled."""
        while True:
            await asyncio.sleep(self._tick)
            self.sweep(self._clock())
