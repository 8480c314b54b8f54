"""Per-connection seq ordering: write in order, drop duplicates, hold what comes early.

Pure logic (no asyncio, no I/O): the connection feeds it seqs and the time, and it
says what to write now. ``delivered`` is the highest seq written. A seq at or below
it is a duplicate. While the connection reads its inbox (``hold``), or when a seq
comes before the ones it follows, it is held; once a gap has been waited on for
``gap_wait_s`` (``gap_due``), the connection reads the missing ones from the inbox.
At most ``limit`` items are held; past that ``offer`` raises ``HeldFull`` and the
connection drops them and re-reads the inbox instead.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["HeldFull", "SeqOrder"]

T = TypeVar("T")


class HeldFull(Exception):
    """More than ``limit`` items are waiting: read the inbox again instead of holding them."""


class SeqOrder(Generic[T]):
    """The ordering state of one connection; items are whatever the caller writes (frames)."""

    __slots__ = ("delivered", "_held", "_gap_since", "_wait_s", "_limit")

    def __init__(self, delivered: int = 0, *, gap_wait_s: float, limit: int) -> None:
        self.delivered = delivered
        self._held: dict[int, T] | None = None  # created on the first early item
        self._gap_since: float | None = None
        self._wait_s = gap_wait_s
        self._limit = limit

    @property
    def held(self) -> int:
        """How many items wait for the ones before them."""
        return len(self._held) if self._held else 0

    def accept(self, seq: int) -> bool:
        """Whether ``seq`` is new (above ``delivered``); if so it becomes ``delivered``.

        For items written without ordering: a replay page, read in seq order."""
        if seq <= self.delivered:
            return False
        self.delivered = seq
        return True

    def offer(self, seq: int, item: T, now: float, *, hold: bool = False) -> list[T]:
        """The items to write now, in seq order, after ``item`` (seq > 0) came in.

        ``hold``: the caller is reading the inbox; keep everything new until ``release``.
        """
        if seq <= self.delivered:
            return []
        if not hold and seq == self.delivered + 1:
            self.delivered = seq
            return [item, *self.release(now)] if self._held else [item]
        held = self._held
        if held is None:
            held = self._held = {}
        if seq not in held and len(held) >= self._limit:
            self.clear()
            raise HeldFull(seq)
        held[seq] = item
        if not hold and self._gap_since is None:
            self._gap_since = now
        return []

    def release(self, now: float) -> list[T]:
        """Take the held items that now follow ``delivered`` (after a replay or a gap fill);
        drop the stale ones. A gap left over starts its wait at ``now``."""
        held = self._held
        if not held:
            return []
        out: list[T] = []
        while (nxt := self.delivered + 1) in held:
            out.append(held.pop(nxt))
            self.delivered = nxt
        for seq in [s for s in held if s <= self.delivered]:
            del held[seq]
        if held:
            self._gap_since = now
        else:
            self.clear()
        return out

    def gap_due(self, now: float) -> bool:
        """Whether items have waited ``gap_wait_s`` for a missing seq: read the inbox."""
        return self._gap_since is not None and now - self._gap_since >= self._wait_s

    @property
    def gap_deadline(self) -> float | None:
        """When the current gap is due (None: no gap)."""
        return None if self._gap_since is None else self._gap_since + self._wait_s

    def clear(self) -> None:
        """Forget the held items (they will be read from the inbox)."""
        self._held = None
        self._gap_since = None
