"""What the route and the nodes say to each other over NATS.

Subjects:
- ``cim.node.<node_id>``: everything for one node. A payload is a MessagePack
  map with ``k`` (kind):
  - ``{"k": "msgs", "d": [[to, seq, ts, kind, frame], ...]}`` -- deliveries,
    possibly for several users of that node (a group send makes one per node).
    ``frame`` is the complete ``msg`` frame as it goes on the client's socket
    (length prefix included, ``shared.protocol.encode``), so a node neither
    decodes nor encodes it: it writes those bytes. ``to``, ``seq``, ``ts`` and
    ``kind`` repeat what the node needs of it (recipient, ordering, metrics).
  - ``{"k": "kick", "user": str, "conn": str | None, "reason": str, "device": str | None}``
    -- close that user's connection ``conn`` (when given), else its ``device``'s (when
    given), else all of them.
  - ``{"k": "drain"}`` -- stop taking logins and move the clients away.
- ``cim.kick.<node_id>``: only ``kick`` payloads, from the other nodes (the
  newest login of a user kicks its older connection wherever it is). Nodes may
  publish here but not on ``cim.node.*`` (their NATS users say so), so a node
  cannot deliver messages to another node's users.
- ``cim.broadcast``: ``{"k": "broadcast", "msg": msg frame, "exclude": str | None}``
  -- every node writes it to all its users but ``exclude``; ``to`` is filled
  per recipient by the node.

``decode`` gives any payload back as maps (``msgs`` with ``items``: the frames
as dicts, for tools and tests); the node reads ``msgs`` with ``unpack`` and
``deliveries``, which leave the frames encoded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from shared.protocol import decode_frame, encode

__all__ = [
    "BROADCAST_SUBJECT",
    "Item",
    "broadcast",
    "decode",
    "deliveries",
    "drain",
    "kick",
    "kick_subject",
    "msgs",
    "node_subject",
    "owner",
    "publish_kick",
    "unpack",
]

BROADCAST_SUBJECT = "cim.broadcast"


class Item(NamedTuple):
    """One item of a ``msgs`` payload: a ``msg`` frame, encoded, and what a node needs of it
    (``to``: the user whose devices get it, ``bus.owner``)."""

    to: str
    seq: int
    ts: int
    kind: str
    frame: bytes


def node_subject(node_id: str) -> str:
    return f"cim.node.{node_id}"


def kick_subject(node_id: str) -> str:
    return f"cim.kick.{node_id}"


def _pack(payload: dict[str, Any]) -> bytes:
    return msgpack.packb(payload, use_bin_type=True)


def owner(m: dict[str, Any]) -> str:
    """Whose inbox a ``msg`` frame belongs to: ``to``, but a carbon's is its sender's."""
    return m["from"] if m.get("carbon") else m["to"]


def msgs(items: list[dict[str, Any]]) -> bytes:
    """Deliveries of complete ``msg`` frames (each with ``to``) to one node, each to its
    ``owner``'s devices."""
    return _pack(
        {
            "k": "msgs",
            "d": [[owner(m), m.get("seq", 0), m.get("ts", 0), m.get("kind", ""), encode(m)] for m in items],
        }
    )


async def publish_kick(
    nats: Any, subject: str, user: str, reason: str, conn: str | None = None, device: str | None = None
) -> None:
    """Ask the node behind ``subject`` (``node_subject`` from the route, ``kick_subject`` from
    another node) to kick ``user``: only connection ``conn``, when given, else its ``device``'s
    connection, when given, else all of them."""
    await nats.publish(subject, kick(user, reason, conn, device))


def kick(user: str, reason: str, conn: str | None = None, device: str | None = None) -> bytes:
    return _pack({"k": "kick", "user": user, "conn": conn, "reason": reason, "device": device})


def drain() -> bytes:
    return _pack({"k": "drain"})


def broadcast(msg: dict[str, Any], exclude: str | None) -> bytes:
    return _pack({"k": "broadcast", "msg": msg, "exclude": exclude})


def unpack(data: bytes) -> dict[str, Any]:
    """Decode a bus payload, leaving ``msgs`` frames encoded; raises ``ValueError`` on
    anything that is not a map with ``k``."""
    try:
        payload = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError("bus payload is not MessagePack") from exc
    if not isinstance(payload, dict) or "k" not in payload:
        raise ValueError("bus payload has no kind")
    return payload


def deliveries(payload: dict[str, Any]) -> list[Item]:
    """The items of an unpacked ``msgs`` payload; ``ValueError`` if one is malformed."""
    try:
        return list(map(Item._make, payload["d"]))
    except (KeyError, TypeError) as exc:
        raise ValueError("malformed msgs payload") from exc


def decode(data: bytes) -> dict[str, Any]:
    """Decode a bus payload entirely: ``msgs`` gets ``items``, its frames as maps."""
    payload = unpack(data)
    if payload["k"] == "msgs":
        payload["items"] = [decode_frame(d.frame) for d in deliveries(payload)]
    return payload
