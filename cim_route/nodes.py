"""The route's live view of the connection nodes, kept from ``NodeRegistry.watch``.

When a node leaves the registry (clean withdraw or TTL expiry after a crash)
the view calls ``on_gone`` so that its sessions are swept. A record the route cannot check --
a key or ``id`` that breaks the node-id rule, an ``id`` other than its key, fields of the wrong
type, a host outside ``CIM_NODE_HOSTS`` when that is set -- is ignored and logged: anyone who
can write the registry must not get logins (and their tokens) sent to a node of theirs. A node drained
through this route is excluded from logins at once, before its own record says
``draining``; the mark is forgotten when the node leaves or restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from shared.protocol import NODE_ID_RE
from shared.registry import NodeEvent, NodeInfo, NodeRegistry, NodeState

__all__ = ["NodeView", "record_problem"]

log = logging.getLogger(__name__)

_RETRY_S = (0.1, 0.5, 1.0, 2.0)
_LOAD_WAIT_S = 2.0


class NodeView:
    """Nodes by id as the registry last said, plus locally requested drains."""

    def __init__(
        self,
        registry: NodeRegistry,
        on_gone: Callable[[str], Awaitable[None]],
        hosts: tuple[str, ...] = (),
    ) -> None:
        self.registry = registry
        self._on_gone = on_gone
        self._hosts = frozenset(hosts)
        self._nodes: dict[str, NodeInfo] = {}
        self._loaded = asyncio.Event()
        self._drained: dict[str, int] = {}
        """node id -> started_at of the incarnation this route asked to drain."""

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, node_id: str) -> NodeInfo | None:
        info = self._nodes.get(node_id)
        if info is not None and self._drained.get(node_id) == info.started_at:
            return dataclasses.replace(info, state=NodeState.DRAINING.value)
        return info

    def listed(self) -> list[NodeInfo]:
        """Every node, sorted by id, with local drains shown as ``draining``."""
        return [info for node_id in sorted(self._nodes) if (info := self.get(node_id)) is not None]

    def accepting(self) -> list[NodeInfo]:
        """The nodes a new login may go to."""
        return [info for info in self.listed() if info.accepting]

    async def loaded(self, timeout: float = _LOAD_WAIT_S) -> None:
        """Until the registry was read once (at most ``timeout``): a route worker that started a
        moment ago must not answer as if there were no nodes while the registry lists some."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._loaded.wait()

    async def accepting_now(self) -> list[NodeInfo]:
        """``accepting`` once loaded; when that is empty, read the registry once more first (the
        watch may be reconnecting)."""
        await self.loaded()
        if not self.accepting():
            try:
                await self._resync()
            except Exception:
                log.exception("node view: reading the registry failed")
        return self.accepting()

    def mark_draining(self, node_id: str) -> None:
        info = self._nodes.get(node_id)
        if info is not None:
            self._drained[node_id] = info.started_at

    async def run(self) -> None:
        """Follow the registry until cancelled; re-subscribe after an error, with backoff."""
        attempt = 0
        while True:
            try:
                await self._resync()
                async for event in self.registry.watch():
                    attempt = 0
                    await self._apply(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node view: registry watch failed, retrying")
            await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
            attempt += 1

    async def _resync(self) -> None:
        """Take the registry as it is: add what is new, drop the nodes that left while the
        watch was down (the watch only shows live ones)."""
        live = await self.registry.snapshot()
        for node_id in [n for n in self._nodes if n not in live]:
            await self._apply(NodeEvent(node_id, None))
        for node_id, info in live.items():
            if self._nodes.get(node_id) != info:
                await self._apply(NodeEvent(node_id, info))
        self._loaded.set()

    async def _apply(self, event: NodeEvent) -> None:
        if event.info is not None:
            problem = record_problem(event.node_id, event.info, self._hosts)
            if problem is None:
                self._nodes[event.node_id] = event.info
                return
            log.warning("registry: record %r ignored: %s", event.node_id, problem)
            event = NodeEvent(event.node_id, None)  # a node that was fine before is gone now
        if self._nodes.pop(event.node_id, None) is None:
            return
        self._drained.pop(event.node_id, None)
        log.info("node %s left the registry; sweeping its sessions", event.node_id)
        try:
            await self._on_gone(event.node_id)
        except Exception:
            log.exception("sweeping the sessions of node %s failed", event.node_id)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "port": (int,),
    "connections": (int,),
    "state": (str,),
    "started_at": (int,),
    "metrics_port": (int, type(None)),
}


def record_problem(key: str, info: NodeInfo, hosts: frozenset[str]) -> str | None:
    """What is wrong with the record ``info`` stored under ``key``, or None if it checks out."""
    if not NODE_ID_RE.fullmatch(key):
        return "key breaks the node-id rule [a-z0-9-]"
    if info.id != key:
        return f"id {info.id!r} is not its key"
    for name, types in _FIELD_TYPES.items():
        value = getattr(info, name)
        if not isinstance(value, types) or isinstance(value, bool):
            return f"{name} is not {' or '.join(t.__name__ for t in types)}"
    if not 0 < info.port < 65536 or not info.host or len(info.host) > 253:
        return "no usable host and port"
    if info.state not in {s.value for s in NodeState}:
        return f"unknown state {info.state!r}"
    if hosts and info.host not in hosts:
        return f"host {info.host!r} is not in CIM_NODE_HOSTS"
    return None
