"""Receipts: keys and send times carried in bodies, latencies, duplicates, waiting for a goal."""

from __future__ import annotations

import time

from cim_cli.bench.receipts import Receipts, percentile, stamp


def test_a_receipt_is_matched_to_its_send_by_the_body() -> None:
    receipts = Receipts("run1-")
    body = stamp("run1-7")
    time.sleep(0.002)
    assert receipts.add(body) == "run1-7"
    (latency,) = receipts.first_latencies_ms()
    assert 2.0 <= latency < 1000.0
    assert receipts.distinct == receipts.total == 1 and receipts.duplicates() == 0


def test_foreign_and_malformed_bodies_are_ignored() -> None:
    receipts = Receipts("run1-")
    for body in (stamp("run0-1"), "hello", "run1-1|notanumber", "run1-2"):
        assert receipts.add(body) is None
    assert receipts.total == 0 and receipts.by_key == {}


def test_second_receipts_count_as_duplicates_and_move_the_latest_latency() -> None:
    receipts = Receipts("g-")
    body = stamp("g-1")
    receipts.add(body)
    time.sleep(0.002)
    receipts.add(body)
    assert receipts.total == 2 and receipts.distinct == 1 and receipts.duplicates() == 1
    (first,), (last,) = receipts.first_latencies_ms(), receipts.last_latencies_ms()
    assert last > first


def test_reset_forgets_and_changes_the_prefix() -> None:
    receipts = Receipts("a-")
    receipts.add(stamp("a-1"))
    receipts.reset("b-")
    assert receipts.total == 0 and receipts.add(stamp("a-2")) is None and receipts.add(stamp("b-1")) == "b-1"


async def test_wait_returns_when_the_goal_is_reached_or_times_out() -> None:
    receipts = Receipts("w-")
    assert not await receipts.wait(lambda: receipts.total >= 1, 0.01)
    receipts.add(stamp("w-1"))
    assert await receipts.wait(lambda: receipts.total >= 1, 0.01)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0 and percentile(values, 0.99) == 100.0
    assert percentile([], 0.5) == 0.0
