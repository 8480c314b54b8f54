"""``Wait``: the WAIT that ends a pipeline, and a clear error when too few replicas confirm."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from shared.durability import Unconfirmed, Wait


async def test_too_few_replicas_raise_within_the_timeout(redis: aioredis.Redis, prefix: str) -> None:
    wait = Wait(1, 150)
    started = time.monotonic()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(f"{prefix}k", "v")
        pipe.execute_command(*wait.command)
        _, confirmed = await asyncio.wait_for(pipe.execute(), 5)
    with pytest.raises(Unconfirmed, match="0 of 1 Redis replicas") as caught:
        wait.check(confirmed)
    assert caught.value.confirmed == 0
    assert 0.1 <= time.monotonic() - started < 2


def test_enough_replicas_pass() -> None:
    Wait(2, 100).check(3)
    with pytest.raises(Unconfirmed):
        Wait(2, 100).check(1)
