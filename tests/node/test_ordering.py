"""``SeqOrder``: the pure seq bookkeeping of one connection."""

from __future__ import annotations

import pytest

from cim_node.ordering import HeldFull, SeqOrder


def order(delivered: int = 0, limit: int = 8) -> SeqOrder[str]:
    return SeqOrder(delivered, gap_wait_s=0.25, limit=limit)


def test_in_order_is_written_at_once() -> None:
    o = order()
    assert [o.offer(s, f"m{s}", now=0.0) for s in (1, 2, 3)] == [["m1"], ["m2"], ["m3"]]
    assert o.delivered == 3 and o.held == 0 and not o.gap_due(100.0)


def test_duplicates_are_dropped() -> None:
    o = order(delivered=5)
    assert o.offer(5, "m5", now=0.0) == [] and o.offer(3, "m3", now=0.0) == []
    assert o.offer(6, "m6", now=0.0) == ["m6"]
    assert o.offer(6, "m6 again", now=0.0) == []
    assert o.delivered == 6


def test_a_gap_is_held_then_filled_in_order() -> None:
    o = order()
    assert o.offer(1, "m1", now=0.0) == ["m1"]
    assert o.offer(3, "m3", now=1.0) == [] and o.offer(4, "m4", now=1.05) == []
    assert o.held == 2 and o.delivered == 1
    assert o.offer(2, "m2", now=1.1) == ["m2", "m3", "m4"]
    assert o.held == 0 and o.delivered == 4 and o.gap_deadline is None


def test_gap_fill_is_due_after_the_wait() -> None:
    o = order()
    o.offer(3, "m3", now=10.0)
    assert o.gap_deadline == 10.25
    assert not o.gap_due(10.125)
    assert o.gap_due(10.25)


def test_replay_then_release() -> None:
    o = order()
    assert o.offer(2, "m2", now=0.0, hold=True) == []  # live while the inbox is read
    assert o.offer(5, "m5", now=0.0, hold=True) == []
    assert not o.gap_due(100.0)  # no gap wait while the inbox is being read
    assert [o.accept(s) for s in (1, 2, 3)] == [True, True, True]  # the replay page
    assert not o.accept(3)
    assert o.release(now=50.0) == []  # 2 was replayed (dropped); 5 still waits for 4
    assert o.held == 1 and not o.gap_due(50.125) and o.gap_due(50.25)
    assert o.offer(4, "m4", now=50.1) == ["m4", "m5"]


def test_too_many_held_asks_for_the_inbox() -> None:
    o = order(limit=2)
    o.offer(3, "m3", now=0.0)
    o.offer(4, "m4", now=0.0)
    with pytest.raises(HeldFull):
        o.offer(5, "m5", now=0.0)
    assert o.held == 0 and o.delivered == 0  # dropped: they are read from the inbox
