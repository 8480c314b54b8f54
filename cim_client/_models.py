"""The values the client hands out: messages, send answers, node addresses, connection states."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["ConnectionState", "Message", "NodeAddress", "SendResult"]


class ConnectionState(enum.StrEnum):
    """Where the TCP session is: ``closed`` -> ``connecting`` -> ``ready`` <-> ``reconnecting``
    -> ``closed``."""

    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Message:
    """One message, from a ``msg`` frame or a history answer.

    ``kind`` is one of the ``MessageKind`` values (``p2p``, ``group``, ``broadcast``,
    ``push``, ``system``, and since v0.2 ``receipt``, ``typing``, ``edit``, ``recall``;
    compare with ``MessageKind.P2P`` etc.); ``seq`` is 0 for a message that is not stored.
    ``carbon``: a copy of what this user did on one of its devices (its own send, receipt,
    edit or recall; ``to`` is the addressee). A receipt says ``sender`` read the conversation
    ``with_`` up to ``read_ts``; an edit or recall names the message it changes in ``ref``;
    a history item that was edited has ``edited_ts``.
    """

    id: str
    seq: int
    kind: str
    sender: str
    to: str
    body: str
    ts: int
    group: str | None = None
    carbon: bool = False
    with_: str | None = None
    read_ts: int | None = None
    ref: str | None = None
    edited_ts: int | None = None
    device: str | None = None
    """Of a carbon: which of my devices did it (when the route knew)."""

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Message:
        """Build from a ``msg`` frame or a history item (``from`` is the sender)."""
        return cls(
            id=str(data.get("id", "")),
            seq=int(data.get("seq") or 0),
            kind=str(data.get("kind", "")),
            sender=str(data.get("from", "")),
            to=str(data.get("to", "")),
            body=str(data.get("body", "")),
            ts=int(data.get("ts") or 0),
            group=data.get("group"),
            carbon=bool(data.get("carbon", False)),
            with_=data.get("with"),
            read_ts=data.get("read_ts"),
            ref=data.get("ref"),
            edited_ts=data.get("edited_ts"),
            device=data.get("device"),
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """The route's answer to ``POST /messages``; ``seq`` is None for a delayed send."""

    id: str
    seq: int | None
    ts: int
    status: str
    due: int | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SendResult:
        """Build from the ``202`` answer ``{id, seq, ts, status, due?}``."""
        return cls(
            id=data["id"], seq=data.get("seq"), ts=data["ts"], status=data["status"], due=data.get("due")
        )


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where a node listens for clients."""

    id: str
    host: str
    port: int
    ws_url: str | None = None
    """Its WebSocket listener (``ws://host:port/ws``), if it has one."""
    tls: bool = False
    """Whether the node speaks TLS (the SDK then checks its certificate)."""

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> NodeAddress:
        """Build from the ``node`` object of a ``/login`` or ``/connect`` answer."""
        ws_url = data.get("ws_url")
        return cls(
            id=str(data["id"]),
            host=str(data["host"]),
            port=int(data["port"]),
            ws_url=str(ws_url) if ws_url else None,
            tls=bool(data.get("tls")),
        )
