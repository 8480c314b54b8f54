"""What a connection may use of its node: built once by ``NodeServer.start``.

A connection sees the settings, the hub, the ack cursors, the metrics, the
session store, the deadline wheel and a few of the server's acts (spawn a task,
kick a session on another node, whether logins are refused) -- and nothing else
of the server, so the connection state machine can be tested with a context
built by hand.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from cim_node.acks import AckCursors
from cim_node.flushes import Flushes
from cim_node.hub import Hub
from cim_node.metrics import NodeMetrics
from cim_node.pending import PendingLogins
from cim_node.store import SessionStore
from cim_node.sweeper import Sweeper
from shared.sessions import Ended
from shared.settings import NodeSettings

__all__ = ["NodeContext"]


def _conn_ids() -> Callable[[], str]:
    """Connection ids unique across restarts of a node id: a boot tag and a counter."""
    boot = secrets.token_hex(3)
    numbers = itertools.count(1)
    return lambda: f"{boot}-{next(numbers):x}"


@dataclass(frozen=True, slots=True)
class NodeContext:
    settings: NodeSettings
    loop: asyncio.AbstractEventLoop
    hub: Hub
    acks: AckCursors
    metrics: NodeMetrics
    store: SessionStore
    sweeper: Sweeper
    spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]
    """Run a task the node owns (cancelled and awaited when it stops)."""
    kick_remote: Callable[[str, Ended], Awaitable[None]]
    """Tell another node to kick a user's session there that a login ended."""
    refusing: Callable[[], bool]
    """Whether logins get ``kick{drain}`` (the node is draining or stopping)."""
    stopping: Callable[[], bool]
    """Whether the node is stopping (it sweeps all its sessions itself)."""
    connections: set[Any] = field(default_factory=set)
    """Every open connection, logged in or not (the server's set of ``Connection``; named
    loosely here, as this module cannot import the connection's)."""
    next_conn_id: Callable[[], str] = field(default_factory=_conn_ids)
    pending: PendingLogins = field(default_factory=PendingLogins)
    """The connections that have not logged in yet (capped in total and per address)."""
    flushes: Flushes = field(default_factory=Flushes)
    """The connections whose queued frames are written at the end of this loop turn."""

    @property
    def node_id(self) -> str:
        return self.settings.node_id
