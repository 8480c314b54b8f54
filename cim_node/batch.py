"""Coalesce the AnyRedis calls of one loop turn into one pipeline: one round trip for many.

A login burst (a node died and its clients come here) would otherwise cost a
round trip and a pooled connection per call, and redis-py refuses calls past
its pool size instead of queueing them. ``call`` queues its commands with the
others of this loop turn; at most ``max_inflight`` pipelines run at once, and
calls made meanwhile wait for the next one, so batches grow with the load.

The node's AnyRedis client has no per-reply socket timeout (redis-py would arm a
timer for every reply of a pipeline); a whole pipeline gets ``REDIS_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shared.scripts import AnyPipeline, AnyRedis, Scripts

__all__ = ["REDIS_TIMEOUT_S", "Queue", "RedisBatch"]

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 5.0
"""Longest a pipeline of the node may take (then its callers get ``TimeoutError``)."""

Queue = Callable[[AnyPipeline], Awaitable[None]]
"""Queues one caller's commands on the shared pipeline; the caller gets their replies."""

_Request = tuple[Queue, "asyncio.Future[list[Any]]"]


class RedisBatch:
    """Pipelines shared by the callers of a loop turn; it owns (and ``close`` ends) its tasks."""

    def __init__(
        self, redis: AnyRedis, scripts: Scripts, *, max_inflight: int = 4, max_batch: int = 512
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._max_inflight = max_inflight
        self._max_batch = max_batch
        self._pending: list[_Request] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def call(self, queue: Queue) -> list[Any]:
        """Run the commands ``queue`` adds, in the next pipeline; return their replies.

        Raises what the pipeline raised (every caller of that pipeline gets it)."""
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((queue, fut))
        self._schedule()
        return await fut

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._pending and len(self._tasks) < self._max_inflight:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            task = loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._pending:
            self._schedule()

    async def _run(self, batch: list[_Request]) -> None:
        batch = [(queue, fut) for queue, fut in batch if not fut.done()]  # callers gone meanwhile
        if not batch:
            return
        try:
            replies, spans = await self._execute([queue for queue, _ in batch])
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:  # every caller learns what went wrong, whatever it was
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), (start, end) in zip(batch, spans, strict=True):
            if not fut.done():  # a caller that was cancelled meanwhile
                fut.set_result(replies[start:end])

    async def _execute(self, queues: list[Queue]) -> tuple[list[Any], list[tuple[int, int]]]:
        spans = []
        async with asyncio.timeout(REDIS_TIMEOUT_S), self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                start = len(pipe)
                await queue(pipe)
                spans.append((start, len(pipe)))
            return await self._scripts.execute(pipe), spans

    async def close(self) -> None:
        """Cancel the pipelines in flight and the calls still waiting."""
        for _, fut in self._pending:
            fut.cancel()
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
