"""The metadata center: which connection nodes exist, where they listen, how loaded they are.

``NodeRegistry`` is the interface; ``MemoryRegistry`` serves unit tests and
``shared.registry_nats.NatsKvRegistry`` (NATS KV bucket ``cim-nodes``) is the
product. Another metadata center (etcd, Consul, ZooKeeper) plugs in by
implementing the same four methods.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import msgpack

__all__ = ["MemoryRegistry", "NodeEvent", "NodeInfo", "NodeRegistry", "NodeState"]


class NodeState(enum.StrEnum):
    UP = "up"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node's record, as stored (msgpack) and as ``GET /nodes`` shows it."""

    id: str
    host: str
    port: int
    connections: int = 0
    state: str = NodeState.UP.value
    started_at: int = 0
    metrics_port: int | None = None
    ws_port: int | None = None
    """The WebSocket listener (path ``/ws``) on ``host``, if the node has one."""
    tls: bool = False
    """Whether its client listener speaks TLS."""

    def pack(self) -> bytes:
        return msgpack.packb(asdict(self), use_bin_type=True)

    @classmethod
    def unpack(cls, data: bytes) -> NodeInfo:
        raw: dict[str, Any] = msgpack.unpackb(data, raw=False)
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)

    @property
    def ws_url(self) -> str | None:
        """``ws://host:port/ws`` (``wss://`` on a TLS node) for browsers, or None when the node has
        no WebSocket listener."""
        if not self.ws_port:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.ws_port}/ws"

    @property
    def accepting(self) -> bool:
        """Whether the route may hand this node out to a new login."""
        return self.state == NodeState.UP.value


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """A change seen by ``watch``: ``info`` is None when the node is gone."""

    node_id: str
    info: NodeInfo | None


class NodeRegistry(Protocol):
    """Node membership with expiry.

    - ``announce`` creates or refreshes a node's record. A record that is not
      refreshed for ``ttl`` seconds (3 refresh periods) disappears on its own,
      and watchers see it go: that is how a SIGKILLed node leaves.
    - ``withdraw`` removes a record at once (clean shutdown).
    - ``snapshot`` returns every live record.
    - ``watch`` yields the current records as events, then every change, in
      the order the registry applied them, until cancelled.
    """

    async def announce(self, info: NodeInfo) -> None: ...

    async def withdraw(self, node_id: str) -> None: ...

    async def snapshot(self) -> dict[str, NodeInfo]: ...

    def watch(self) -> AsyncIterator[NodeEvent]: ...


class MemoryRegistry:
    """In-process registry for unit tests; ``expire`` stands in for the TTL."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._watchers: set[asyncio.Queue[NodeEvent]] = set()

    async def announce(self, info: NodeInfo) -> None:
        self._nodes[info.id] = info
        self._emit(NodeEvent(info.id, info))

    async def withdraw(self, node_id: str) -> None:
        if self._nodes.pop(node_id, None) is not None:
            self._emit(NodeEvent(node_id, None))

    expire = withdraw

    async def snapshot(self) -> dict[str, NodeInfo]:
        return dict(self._nodes)

    async def watch(self) -> AsyncIterator[NodeEvent]:
        queue: asyncio.Queue[NodeEvent] = asyncio.Queue(maxsize=1000)
        self._watchers.add(queue)
        try:
            for info in list(self._nodes.values()):
                yield NodeEvent(info.id, info)
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    def _emit(self, event: NodeEvent) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)
