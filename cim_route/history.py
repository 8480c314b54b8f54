"""Conversation history: one Redis stream per conversation (``keys.dm_history`` for two
users, ``keys.group_history`` for a group), read by ``GET /history``. A p2p message's entry
is written by its store script (``lua/send.lua``, same call, same ``ts``); group messages'
entries are written off the send path, here.

The send path only queues an entry (bounded queue, never waits); ``run`` writes
them in pipelined batches. A conversation keeps at most ``CIM_HISTORY_MAX`` entries, and a
read looks at most at ``CIM_HISTORY_SCAN`` of them. History is a convenience copy: the inbox is what the
delivery guarantee rests on, so an entry that cannot be queued or written is
counted and logged, never retried at the cost of a send. Streams are trimmed by
MINID to the retention period on every append and expire when idle that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgpack

from cim_route.metrics import Metrics
from shared.scripts import REDIS_FAILURES, AnyRedis

__all__ = ["History"]

log = logging.getLogger(__name__)

_BATCH = 500
_PAGE = 200
_EXPIRE_EVERY_MS = 60_000
"""A conversation's expiry is pushed to now + retention at most about this often (one PEXPIRE
a minute per active conversation instead of one per write batch)."""
_EXPIRE_MEMORY = 100_000
_LAG_MS = 60_000
"""An entry's stream id (its append time) follows its ``ts`` by at most this much, so a
read ``before`` T starts at stream id T + lag and filters on ``ts``."""


class History:
    """Queue of entries to append, the task that writes them, and the reader."""

    def __init__(
        self,
        redis: AnyRedis,
        retention_s: int,
        metrics: Metrics,
        *,
        scan: int = 10_000,
        keep: int = 100_000,
        maxsize: int = 10_000,
    ) -> None:
        self._redis = redis
        self._retention_ms = retention_s * 1000
        self._scan = scan
        self._keep = keep
        self._metrics = metrics
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=maxsize)
        self._expired_at: dict[str, int] = {}
        self._expire_every_ms = min(_EXPIRE_EVERY_MS, self._retention_ms // 100)

    def append(self, key: str, entry: dict[str, Any]) -> None:
        """Queue ``entry`` (a message: id, kind, from, to, body, ts, group?) for stream ``key``."""
        try:
            self._queue.put_nowait((key, msgpack.packb(entry, use_bin_type=True)))
        except asyncio.QueueFull:
            self._metrics.history_dropped.inc()
            log.warning("history queue full: message %s not kept in %s", entry.get("id"), key)

    async def run(self) -> None:
        """Write queued entries until cancelled, a batch per Redis round trip."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except REDIS_FAILURES as exc:
                self._metrics.history_dropped.inc(len(batch))
                log.warning("history: %d entries lost: %s", len(batch), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def flush(self, timeout: float) -> None:
        """Wait until everything queued so far is written (tests; shutdown)."""
        await asyncio.wait_for(self._queue.join(), timeout)

    async def _write(self, batch: list[tuple[str, bytes]]) -> None:
        now = int(time.time() * 1000)
        cutoff = now - self._retention_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, packed in batch:
                pipe.execute_command("XADD", key, "MINID", "~", cutoff, "*", "m", packed)
                pipe.execute_command("XTRIM", key, "MAXLEN", self._keep)
            for key in self._to_expire({key for key, _ in batch}, now):
                pipe.execute_command("PEXPIRE", key, self._retention_ms)
            await pipe.execute()

    async def _edited(self, edits_key: str, entries: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """``entries`` with their edits applied (None for a recalled one): one HMGET a page."""
        changes = await self._redis.hmget(edits_key, [e["id"] for e in entries])
        out: list[dict[str, Any] | None] = []
        for entry, raw in zip(entries, changes, strict=True):
            change = msgpack.unpackb(raw, raw=False) if raw is not None else {}
            out.append(None if change.get("recalled") else {**entry, **change})
        return out

    def _to_expire(self, keys: set[str], now: int) -> list[str]:
        """The ones of ``keys`` whose expiry was not pushed out lately: once per
        minute (or 1 % of the retention, if less) is enough: a conversation then lives at
        least 99 % of the retention period past its last message."""
        due = [key for key in keys if now - self._expired_at.get(key, 0) >= self._expire_every_ms]
        if len(self._expired_at) + len(due) > _EXPIRE_MEMORY:
            self._expired_at.clear()
        for key in due:
            self._expired_at[key] = now
        return due

    async def read(
        self,
        key: str,
        *,
        before: int | None,
        q: str | None,
        limit: int,
        since: int | None = None,
        edits_key: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` entries of ``key``, newest first, with ``since <= ts < before`` and
        ``q`` (case-insensitive) in the body when given, looking at no more than ``scan``
        entries; and whether older ones may match (the page is full or the scan stopped).
        ``edits_key``: the conversation's edits (v0.2): an edited entry shows its new body and
        ``edited_ts``, a recalled one is left out."""
        needle = q.casefold() if q else None
        top = "+" if before is None else str(before + _LAG_MS)
        found: list[dict[str, Any]] = []
        scanned = 0
        while scanned < self._scan:
            count = min(_PAGE, self._scan - scanned)
            page = await self._redis.xrevrange(key, max=top, min="-", count=count)
            scanned += len(page)
            entries: list[dict[str, Any] | None] = [msgpack.unpackb(f[b"m"], raw=False) for _, f in page]
            if edits_key is not None and entries:
                entries = await self._edited(edits_key, entries)
            for i, ((stream_id, fields), entry) in enumerate(zip(page, entries, strict=True)):
                if since is not None and int(stream_id.split(b"-")[0]) < since:
                    return found, False  # appended before ``since``: so is every older one
                if entry is None:  # recalled
                    continue
                if b"ts" in fields:  # written by send.lua, which knows the time only there
                    entry["ts"] = int(fields[b"ts"])
                if not _matches(entry, before, since, needle):
                    continue
                found.append(entry)
                if len(found) == limit:
                    return found, i + 1 < len(page) or len(page) == count
            if len(page) < count:
                return found, False
            top = "(" + page[-1][0].decode()
        return found, True


def _matches(entry: dict[str, Any], before: int | None, since: int | None, needle: str | None) -> bool:
    if before is not None and entry["ts"] >= before:
        return False
    if since is not None and entry["ts"] < since:
        return False
    return needle is None or needle in str(entry.get("body", "")).casefold()
