"""NATS -> hub: the node's subscriptions and what each bus payload does.

``cim.node.<id>`` (from the route) carries ``msgs`` (each item an encoded
``msg`` frame whose ``to`` is one of this node's users), ``kick`` and
``drain``; ``cim.kick.<id>`` (from other nodes) carries ``kick`` only;
``cim.broadcast`` carries messages for every user of every node but
``exclude``. A payload is decoded once and a ``msgs`` frame is written as it
came (``shared.bus``); ordering, holding and gap filling per user live in the
connection. After a NATS reconnect every connection re-reads its inbox,
because whatever was published while the node was cut off is there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cim_node.hub import Hub
from shared import bus
from shared.protocol import encode

__all__ = ["Delivery"]

log = logging.getLogger(__name__)


class Delivery:
    """The node's three subscriptions and their handlers; ``on_drain`` starts the node's drain."""

    def __init__(self, node_id: str, hub: Hub, on_drain: Callable[[], None]) -> None:
        self._node_id = node_id
        self._hub = hub
        self._on_drain = on_drain
        self._subs: list[Subscription] = []

    async def start(self, nc: NatsClient) -> None:
        self._subs = [
            await nc.subscribe(bus.node_subject(self._node_id), cb=self._on_node_msg),
            await nc.subscribe(bus.kick_subject(self._node_id), cb=self._on_kick),
            await nc.subscribe(bus.BROADCAST_SUBJECT, cb=self._on_broadcast),
        ]

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await sub.unsubscribe()
        self._subs = []

    def deliver(self, items: list[bus.Item]) -> None:
        """Hand each frame to every connection (device) of its recipient here."""
        devices = self._hub.devices
        for item in items:
            for conn in devices(item.to):
                conn.deliver(item)

    def broadcast(self, msg: dict[str, Any], exclude: str | None) -> None:
        """Write a seq-0 message to every user here but ``exclude``, ``to`` set per recipient."""
        ts, kind = msg.get("ts", 0), msg.get("kind", "")
        for conn in self._hub:
            if conn.user != exclude:
                conn.deliver(bus.Item(conn.user, 0, ts, kind, encode({**msg, "to": conn.user})))

    def resync_all(self) -> None:
        for conn in self._hub:
            conn.resync()

    async def _on_node_msg(self, msg: Msg) -> None:
        try:
            payload = bus.unpack(msg.data)
            kind = payload["k"]
            if kind == "msgs":
                self.deliver(bus.deliveries(payload))
            elif kind == "kick":
                self._kick(payload)
            elif kind == "drain":
                self._on_drain()
            else:
                log.warning("node=%s unknown bus payload kind %r ignored", self._node_id, kind)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node=%s bad bus payload on %s: %r", self._node_id, msg.subject, exc)

    def _kick(self, payload: dict[str, Any]) -> None:
        self._hub.kick(payload["user"], payload["reason"], payload.get("conn"), payload.get("device"))

    async def _on_kick(self, msg: Msg) -> None:
        try:
            payload = bus.unpack(msg.data)
            if payload["k"] != "kick":
                raise ValueError(f"only kicks here, not {payload['k']!r}")
            self._kick(payload)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node=%s bad payload on %s: %r", self._node_id, msg.subject, exc)

    async def _on_broadcast(self, msg: Msg) -> None:
        try:
            payload = bus.unpack(msg.data)
            self.broadcast(payload["msg"], payload.get("exclude"))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node=%s bad broadcast payload: %r", self._node_id, exc)
