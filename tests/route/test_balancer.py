"""Balancers: each strategy's choice, and that only the given (accepting) nodes are used."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cim_route.balancer import (
    BALANCERS,
    ConsistentHash,
    LeastConnections,
    RandomChoice,
    RoundRobin,
    make_balancer,
)
from shared.registry import NodeInfo
from shared.settings import BALANCERS as SETTING_NAMES


def nodes(*ids: str, **connections: int) -> list[NodeInfo]:
    return [
        NodeInfo(id=i, host="h", port=1, connections=connections.get(i.replace("-", "_"), 0)) for i in ids
    ]


def test_names_match_settings() -> None:
    assert set(BALANCERS) == set(SETTING_NAMES)
    for name in SETTING_NAMES:
        assert isinstance(make_balancer(name), BALANCERS[name])


def test_round_robin_cycles_by_id() -> None:
    rr = RoundRobin()
    picks = [rr.pick(nodes("b", "a", "c"), "u").id for _ in range(6)]
    assert picks == ["a", "b", "c", "a", "b", "c"]


def test_consistent_hash_is_sticky_and_moves_little() -> None:
    ch = ConsistentHash()
    users = [f"user{i}" for i in range(2000)]
    three = nodes("n1", "n2", "n3")
    before = {u: ch.pick(three, u).id for u in users}
    assert before == {u: ch.pick(list(reversed(three)), u).id for u in users}  # order does not matter
    spread = Counter(before.values())
    assert all(400 < count < 900 for count in spread.values()), spread
    after = {u: ch.pick(nodes("n1", "n2", "n3", "n4"), u).id for u in users}
    moved = [u for u in users if before[u] != after[u]]
    assert all(after[u] == "n4" for u in moved)  # only to the new node
    assert 300 < len(moved) < 750
    without = {u: ch.pick(nodes("n1", "n3"), u).id for u in users}
    assert all(without[u] == before[u] for u in users if before[u] != "n2")


def test_least_connections_counts_its_own_handouts() -> None:
    lc = LeastConnections()
    view = nodes("a", "b", a=10, b=7)
    picks = [lc.pick(view, f"u{i}").id for i in range(5)]
    assert picks == ["b", "b", "b", "a", "b"]  # b: 7, 8, 9; then 10 = 10 (a by id); then a has 11
    # a registry refresh (new connection counts) resets the local handouts
    assert lc.pick(nodes("a", "b", a=1, b=7), "x").id == "a"


def test_random_uses_every_node() -> None:
    rc = RandomChoice(random.Random(7))
    assert {rc.pick(nodes("a", "b", "c"), "u").id for _ in range(100)} == {"a", "b", "c"}


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_never_a_node_that_is_not_given(name: str) -> None:
    balancer = make_balancer(name)
    for _ in range(20):
        balancer.pick(nodes("a", "b", "c"), "u")
    for i in range(50):
        assert balancer.pick(nodes("a", "c"), f"u{i}").id in {"a", "c"}
