"""``confirm_replicas``: WAIT on the server that holds the key, a clear error when too few confirm."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from shared.durability import Unconfirmed, confirm_replicas


async def test_no_wait_asked_returns_at_once(redis: aioredis.Redis, prefix: str) -> None:
    await redis.set(f"{prefix}k", "v")
    assert await confirm_replicas(redis, f"{prefix}k", 0, 100) == 0


async def test_too_few_replicas_raise_within_the_timeout(redis: aioredis.Redis, prefix: str) -> None:
    await redis.set(f"{prefix}k", "v")
    started = time.monotonic()
    with pytest.raises(Unconfirmed, match="0 of 1 Redis replicas") as caught:
        await asyncio.wait_for(confirm_replicas(redis, f"{prefix}k", 1, 150), 5)
    assert caught.value.confirmed == 0
    assert 0.1 <= time.monotonic() - started < 2
