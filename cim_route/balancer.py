"""Which node a login goes to. ``BALANCERS`` maps ``CIM_BALANCER`` names to classes.

Every strategy picks among the nodes it is given: the caller passes only the
nodes that accept logins (in the registry, not draining), so a node that left
or drains is never handed out whatever the strategy remembers.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from shared.registry import NodeInfo

__all__ = [
    "BALANCERS",
    "Balancer",
    "ConsistentHash",
    "LeastConnections",
    "RandomChoice",
    "RoundRobin",
    "make_balancer",
]


class Balancer(Protocol):
    """Picks one of ``nodes`` (never empty) for the login of ``username``."""

    def pick(self, nodes: Sequence[NodeInfo], username: str) -> NodeInfo: ...


def _by_id(nodes: Sequence[NodeInfo]) -> list[NodeInfo]:
    return sorted(nodes, key=lambda n: n.id)


class RoundRobin:
    """Each node in turn (by id order)."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def pick(self, nodes: Sequence[NodeInfo], username: str) -> NodeInfo:
        ordered = _by_id(nodes)
        return ordered[next(self._counter) % len(ordered)]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class ConsistentHash:
    """The same user lands on the same node while the node set stays; a node joining or
    leaving moves only about 1/N of the users. ``replicas`` virtual points per node."""

    def __init__(self, replicas: int = 100) -> None:
        self.replicas = replicas
        self._ring_ids: tuple[str, ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []

    def _ring(self, ids: tuple[str, ...]) -> None:
        if ids == self._ring_ids:
            return
        ring = sorted((_hash64(f"{node_id}#{i}"), node_id) for node_id in ids for i in range(self.replicas))
        self._points = [point for point, _ in ring]
        self._owners = [owner for _, owner in ring]
        self._ring_ids = ids

    def pick(self, nodes: Sequence[NodeInfo], username: str) -> NodeInfo:
        by_id = {n.id: n for n in nodes}
        self._ring(tuple(sorted(by_id)))
        index = bisect.bisect(self._points, _hash64(username)) % len(self._points)
        return by_id[self._owners[index]]


class LeastConnections:
    """The node with the fewest connections. Logins handed out since a node's last registry
    refresh count too, so a burst of logins does not all go to the same node."""

    def __init__(self) -> None:
        self._handed: dict[str, tuple[int, int]] = {}
        """node id -> (connections the registry said, logins handed out since)."""

    def _load(self, node: NodeInfo) -> int:
        seen, handed = self._handed.get(node.id, (node.connections, 0))
        return node.connections + (handed if seen == node.connections else 0)

    def pick(self, nodes: Sequence[NodeInfo], username: str) -> NodeInfo:
        chosen = min(_by_id(nodes), key=self._load)
        seen, handed = self._handed.get(chosen.id, (chosen.connections, 0))
        handed = handed + 1 if seen == chosen.connections else 1
        self._handed = {n.id: self._handed[n.id] for n in nodes if n.id in self._handed}
        self._handed[chosen.id] = (chosen.connections, handed)
        return chosen


class RandomChoice:
    """Any node, uniformly."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def pick(self, nodes: Sequence[NodeInfo], username: str) -> NodeInfo:
        return self._rng.choice(_by_id(nodes))


BALANCERS: dict[str, type[Balancer]] = {
    "round_robin": RoundRobin,
    "consistent_hash": ConsistentHash,
    "least_connections": LeastConnections,
    "random": RandomChoice,
}


def make_balancer(name: str) -> Balancer:
    """The balancer named by ``CIM_BALANCER``."""
    return BALANCERS[name]()
