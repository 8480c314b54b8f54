"""NATS -> hub: the node's subscriptions and what each bus payload does.

``cim.node.<id>`` carries ``msgs`` (each item a complete ``msg`` frame whose
``to`` is one of this node's users), ``kick`` and ``drain``;
``cim.broadcast`` carries messages for every user of every node but
``exclude``. Ordering, holding and gap filling per user live in
``Connection.deliver``; after a NATS reconnect every connection re-reads its
inbox, because whatever was published while the node was cut off is there.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import bus

if TYPE_CHECKING:
    from cim_node.server import NodeServer

__all__ = ["Delivery"]

log = logging.getLogger(__name__)


class Delivery:
    """The node's two subscriptions and their handlers."""

    def __init__(self, node: NodeServer) -> None:
        self._node = node
        self._subs: list[Subscription] = []

    async def start(self, nc: NatsClient) -> None:
        self._subs = [
            await nc.subscribe(bus.node_subject(self._node.id), cb=self._on_node_msg),
            await nc.subscribe(bus.BROADCAST_SUBJECT, cb=self._on_broadcast),
        ]

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await sub.unsubscribe()
        self._subs = []

    def deliver(self, items: list[dict[str, Any]]) -> None:
        """Hand each ``msg`` frame to its recipient's connection, if that user is here."""
        hub = self._node.hub
        for item in items:
            conn = hub.get(item["to"])
            if conn is not None:
                conn.deliver(item)

    def broadcast(self, msg: dict[str, Any], exclude: str | None) -> None:
        """Write a seq-0 message to every user here but ``exclude``, ``to`` set per recipient."""
        for conn in self._node.hub:
            if conn.user != exclude:
                conn.deliver({**msg, "to": conn.user})

    def resync_all(self) -> None:
        for conn in self._node.hub:
            conn.resync()

    async def _on_node_msg(self, msg: Msg) -> None:
        node = self._node
        try:
            payload = bus.decode(msg.data)
            kind = payload["k"]
            if kind == "msgs":
                self.deliver(payload["items"])
            elif kind == "kick":
                node.hub.kick(payload["user"], payload["reason"], payload.get("conn"))
            elif kind == "drain":
                node.spawn(node.drain())
            else:
                log.warning("node=%s unknown bus payload kind %r ignored", node.id, kind)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node=%s bad bus payload on %s: %r", node.id, msg.subject, exc)

    async def _on_broadcast(self, msg: Msg) -> None:
        try:
            payload = bus.decode(msg.data)
            self.broadcast(payload["msg"], payload.get("exclude"))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node=%s bad broadcast payload: %r", self._node.id, exc)
