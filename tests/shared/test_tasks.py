"""``first_done``: the first finisher is returned, the rest are cancelled and awaited."""

from __future__ import annotations

import asyncio

import pytest

from shared.tasks import first_done


async def test_first_finisher_wins_and_the_rest_are_cancelled() -> None:
    gate = asyncio.Event()
    slow = asyncio.ensure_future(asyncio.sleep(30))
    loop = asyncio.get_running_loop()
    loop.call_soon(gate.set)
    first = await first_done(gate.wait(), slow)
    assert first is not None and first.result() is True
    assert slow.cancelled()


async def test_an_exception_is_a_finish_too() -> None:
    async def boom() -> None:
        raise ValueError("no")

    waiter = asyncio.ensure_future(asyncio.Event().wait())
    first = await first_done(waiter, boom())
    assert first is not None and isinstance(first.exception(), ValueError)
    assert waiter.cancelled()


async def test_timeout_cancels_all() -> None:
    never = asyncio.ensure_future(asyncio.Event().wait())
    assert await first_done(never, timeout=0.01) is None
    assert never.cancelled()


async def test_caller_cancelled_leaves_nothing_running() -> None:
    inner = asyncio.ensure_future(asyncio.Event().wait())
    outer = asyncio.ensure_future(first_done(inner))
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner.cancelled()
