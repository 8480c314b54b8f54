"""Ack cursors: cumulative client acks collected in memory, written to Redis in batches.

A client may ack every message; writing each one would cost a Redis round
trip per frame. Instead ``mark`` keeps the highest seq per user's device and ``run``
writes every dirty cursor every ``ack_flush_ms`` in ONE pipeline of
``max_set`` calls (a cursor never goes back, whichever node writes last): the
device's own cursor (its replay) and the user's (where a new device starts).
``wake`` asks for an early flush (a connection closed: its user may log in
elsewhere right away and read the cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cim_node.batch import REDIS_TIMEOUT_S
from cim_node.metrics import NodeMetrics
from shared.keys import Keys
from shared.scripts import REDIS_FAILURES, AnyRedis, Scripts

__all__ = ["AckCursors"]

log = logging.getLogger(__name__)


class AckCursors:
    """Dirty ack cursors of this node's users and the loop that flushes them."""

    def __init__(
        self,
        redis: AnyRedis,
        scripts: Scripts,
        keys: Keys,
        *,
        retention_ms: int,
        interval_s: float,
        metrics: NodeMetrics,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._retention_ms = retention_ms
        self._interval_s = interval_s
        self._metrics = metrics
        self._dirty: dict[tuple[str, str], int] = {}
        self._wake = asyncio.Event()

    def mark(self, user: str, device: str, seq: int) -> None:
        if seq > self._dirty.get((user, device), 0):
            self._dirty[(user, device)] = seq

    def wake(self, user: str, device: str) -> None:
        """Flush soon if ``user``'s ``device`` has an unwritten cursor."""
        if (user, device) in self._dirty:
            self._wake.set()

    async def run(self) -> None:
        """Flush every interval (or when woken) until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every dirty cursor in one pipeline; on a Redis error keep them for the next try."""
        if not self._dirty:
            return
        batch, self._dirty = self._dirty, {}
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S), self._redis.pipeline(transaction=False) as pipe:
                # EVALSHA queued directly: redis-py's script wrapper costs more than the command
                # (and a cluster pipeline refuses its evalsha method); Scripts.execute loads the
                # script again if Redis lost it.
                sha, keys, retention = self._scripts.max_set.sha, self._keys, self._retention_ms
                queue = pipe.execute_command
                for (user, device), seq in batch.items():
                    queue("EVALSHA", sha, 2, keys.device_ack(user, device), keys.ack(user), seq, retention)
                await self._scripts.execute(pipe)
        except REDIS_FAILURES as exc:
            self._metrics.redis_errors.inc()
            log.warning("ack flush of %d cursors failed: %s", len(batch), exc)
            for (user, device), seq in batch.items():
                self.mark(user, device, seq)
