"""Coalescing of the Redis work of concurrent requests: every command given to ``Batcher.call``
during one event-loop turn goes out in one pipeline (one write, one read, one connection), so a
busy route pays redis-py's per-round-trip cost once per turn instead of once per request."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.durability import Wait
from shared.scripts import AnyRedis, Scripts

__all__ = ["Batcher"]

MAX_BATCH = 256
"""Most commands in one pipeline; more in one turn start another pipeline at once."""


class Batcher:
    """Queues commands, sends them once per loop turn; owns the tasks that do it. The queue
    holds one command per request in flight (each caller awaits its reply), no more."""

    def __init__(
        self, redis: AnyRedis, scripts: Scripts, max_batch: int = MAX_BATCH, wait: Wait | None = None
    ) -> None:
        self._redis = redis
        self._wait = wait
        """``CIM_REDIS_WAIT``: each pipeline ends with a ``WAIT``; too few replicas and every
        caller of the batch gets ``Unconfirmed`` (503)."""
        self._scripts = scripts
        self._max = max_batch
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def wait(self) -> Wait | None:
        """The ``WAIT`` every store of a send ends with (``CIM_REDIS_WAIT``), or None."""
        return self._wait

    async def call(self, *command: Any) -> Any:
        """Run ``command`` (``execute_command`` arguments) in the next pipeline; its reply, or the
        error it got (an error reply, or the pipeline's connection error)."""
        return await self._queue(command)

    async def call_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` in the next pipeline (together); their replies, or the first error."""
        return list(await asyncio.gather(*(self._queue(command) for command in commands)))

    def _queue(self, command: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, future))
        if len(self._pending) >= self._max:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._run(batch), name="redis batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                if self._wait is not None:
                    pipe.execute_command(*self._wait.command)
                replies = await self._scripts.execute(pipe, raise_on_error=False)
            if self._wait is not None:
                self._wait.check(replies.pop())
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # every caller of the batch gets the error (503 upstream)
            replies = [exc] * len(batch)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the request went away
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def aclose(self) -> None:
        """Cancel the pipelines in flight and wait for them (shutdown)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
