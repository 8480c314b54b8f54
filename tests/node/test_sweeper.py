"""The deadline wheel: each item looked at once its deadline passed, re-armed on request."""

from __future__ import annotations

import asyncio

from cim_node.sweeper import Sweeper, tick_for


class Item:
    def __init__(self, again: list[float | None]) -> None:
        self.again = again
        self.seen: list[float] = []

    def expire(self, now: float) -> float | None:
        self.seen.append(now)
        return self.again.pop(0) if self.again else None


def test_items_expire_once_their_deadline_passed() -> None:
    wheel = Sweeper(0.25, clock=lambda: 0.0)
    early, late = Item([]), Item([])
    wheel.add(early, 0.3)
    wheel.add(late, 1.0)
    assert wheel.sweep(0.25) == 0 and early.seen == []
    assert wheel.sweep(0.5) == 1 and early.seen == [0.5]
    assert wheel.sweep(0.75) == 0
    assert wheel.sweep(1.0) == 1 and late.seen == [1.0]
    assert len(wheel) == 0


def test_an_item_asks_to_be_looked_at_again() -> None:
    wheel = Sweeper(0.25, clock=lambda: 0.0)
    item = Item([2.0, None])
    wheel.add(item, 1.0)
    wheel.sweep(1.0)
    assert len(wheel) == 1
    wheel.sweep(1.75)
    assert item.seen == [1.0]
    wheel.sweep(2.0)
    assert item.seen == [1.0, 2.0] and len(wheel) == 0


def test_a_deadline_in_the_past_goes_to_the_next_sweep() -> None:
    wheel = Sweeper(0.25, clock=lambda: 0.0)
    wheel.sweep(5.0)
    item = Item([])
    wheel.add(item, 1.0)
    assert wheel.sweep(5.25) == 1


def test_a_failing_item_does_not_stop_the_others() -> None:
    class Broken:
        def expire(self, now: float) -> float | None:
            raise RuntimeError("boom")

    wheel = Sweeper(0.25, clock=lambda: 0.0)
    ok = Item([])
    wheel.add(Broken(), 0.5)
    wheel.add(ok, 0.5)
    assert wheel.sweep(0.5) == 2 and ok.seen == [0.5]


def test_tick_follows_the_shortest_deadline() -> None:
    assert tick_for(10.0, 90.0) == 1.0
    assert tick_for(0.05, 3.0) == 0.01
    assert tick_for(2.0, 3.0) == 0.2


async def test_run_sweeps_on_the_clock() -> None:
    loop = asyncio.get_running_loop()
    wheel = Sweeper(0.01, clock=loop.time)
    done = asyncio.Event()

    class Flag:
        def expire(self, now: float) -> float | None:
            done.set()
            return None

    wheel.add(Flag(), loop.time() + 0.03)
    task = asyncio.ensure_future(wheel.run())
    try:
        await asyncio.wait_for(done.wait(), 2)
    finally:
        task.cancel()
