"""``RedisBatch`` against the real Redis: calls of one loop turn share one pipeline."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from cim_cli.ops.services import Service
from cim_node.batch import RedisBatch
from shared.scripts import Scripts


async def test_calls_of_one_turn_share_a_pipeline_and_get_their_own_replies(
    redis: aioredis.Redis, redis_service: Service, prefix: str
) -> None:
    batch = RedisBatch(redis, Scripts.register(redis), max_inflight=1)
    try:
        await redis.set(f"{prefix}a", "1")

        def queue_get(key: str, also: str | None = None):
            async def queue(pipe: Pipeline) -> None:
                pipe.get(key)
                if also is not None:
                    pipe.exists(also)

            return queue

        calls = [batch.call(queue_get(f"{prefix}a")), batch.call(queue_get(f"{prefix}b", f"{prefix}a"))]
        first, second = await asyncio.gather(*calls)
        assert first == [b"1"] and second == [None, 1]
        # 200 calls at once (a login burst) need no more connections than pipelines in flight:
        # a client allowed 2 connections serves them all (redis-py refuses a call past its pool).
        small = aioredis.Redis.from_url(redis_service.url, max_connections=2)
        narrow = RedisBatch(small, Scripts.register(small), max_inflight=2)
        try:
            replies = await asyncio.gather(*(narrow.call(queue_get(f"{prefix}a")) for _ in range(200)))
            assert replies == [[b"1"]] * 200
        finally:
            await narrow.close()
            await small.aclose()
    finally:
        await batch.close()


async def test_an_error_reaches_every_caller_of_that_pipeline(redis: aioredis.Redis, prefix: str) -> None:
    batch = RedisBatch(redis, Scripts.register(redis))
    try:
        await redis.set(f"{prefix}s", "text")

        async def bad(pipe: Pipeline) -> None:
            pipe.lpush(f"{prefix}s", "x")  # WRONGTYPE

        async def good(pipe: Pipeline) -> None:
            pipe.get(f"{prefix}s")

        results = await asyncio.gather(batch.call(bad), batch.call(good), return_exceptions=True)
        assert all(isinstance(r, ResponseError) for r in results)
        assert await batch.call(good) == [b"text"]  # the next pipeline is fine
    finally:
        await batch.close()


async def test_a_cancelled_caller_sends_nothing(redis: aioredis.Redis, prefix: str) -> None:
    batch = RedisBatch(redis, Scripts.register(redis))
    try:

        async def write(pipe: Pipeline) -> None:
            pipe.set(f"{prefix}w", "1")

        call = asyncio.ensure_future(batch.call(write))
        await asyncio.sleep(0)  # queued for this turn's pipeline
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        async def read(pipe: Pipeline) -> None:
            pipe.get(f"{prefix}w")

        assert await batch.call(read) == [None]
    finally:
        await batch.close()
