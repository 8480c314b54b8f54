"""What the route and the nodes say to each other over NATS.

Subjects:
- ``cim.node.<node_id>``: everything for one node. A payload is a MessagePack
  map with ``k`` (kind):
  - ``{"k": "msgs", "items": [msg frame, ...]}`` -- deliveries, possibly for
    several users of that node (a group send makes one per node). Each item is
    a complete ``msg`` frame; its ``to`` names the recipient.
  - ``{"k": "kick", "user": str, "conn": str | None, "reason": str}`` -- close
    that user's connection (only if it is ``conn``, when given).
  - ``{"k": "drain"}`` -- stop taking logins and move the clients away.
- ``cim.broadcast``: ``{"k": "broadcast", "msg": msg frame, "exclude": str | None}``
  -- every node writes it to all its users but ``exclude``; ``to`` is filled
  per recipient by the node.
"""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = [
    "BROADCAST_SUBJECT",
    "broadcast",
    "decode",
    "drain",
    "kick",
    "msgs",
    "node_subject",
]

BROADCAST_SUBJECT = "cim.broadcast"


def node_subject(node_id: str) -> str:
    return f"cim.node.{node_id}"


def _pack(payload: dict[str, Any]) -> bytes:
    return msgpack.packb(payload, use_bin_type=True)


def msgs(items: list[dict[str, Any]]) -> bytes:
    return _pack({"k": "msgs", "items": items})


def kick(user: str, reason: str, conn: str | None = None) -> bytes:
    return _pack({"k": "kick", "user": user, "conn": conn, "reason": reason})


def drain() -> bytes:
    return _pack({"k": "drain"})


def broadcast(msg: dict[str, Any], exclude: str | None) -> bytes:
    return _pack({"k": "broadcast", "msg": msg, "exclude": exclude})


def decode(data: bytes) -> dict[str, Any]:
    """Decode a bus payload; raises ``ValueError`` on anything that is not a map with ``k``."""
    try:
        payload = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError("bus payload is not MessagePack") from exc
    if not isinstance(payload, dict) or "k" not in payload:
        raise ValueError("bus payload has no kind")
    return payload
