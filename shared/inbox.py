"""Per-user inboxes: the stored form of a message, storing one and reading after a seq.

An inbox is a Redis stream whose entry ids are ``<seq>-0``, so "everything after
seq n" is one ``XRANGE``. An entry holds the message without ``seq`` and ``ts``
(field ``m``, MessagePack) and the time it entered (field ``ts``); the seq is
the entry id. ``store`` assigns seq, appends and trims in one Lua call
(``lua/store.lua``), which is what makes seq gap-free under concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import Keys
from shared.scripts import Scripts

__all__ = ["Stored", "msg_frame", "pack_message", "parse_stored", "read_after", "store"]


@dataclass(frozen=True, slots=True)
class Stored:
    """Outcome of a store: ``new`` is False when an idempotency key matched."""

    new: bool
    seq: int
    ts: int
    id: str


def pack_message(*, id: str, kind: str, sender: str, to: str, body: str, group: str | None = None) -> bytes:
    """The stored part of a message: everything of the ``msg`` frame but seq and ts."""
    m: dict[str, Any] = {"id": id, "kind": kind, "from": sender, "to": to, "body": body}
    if group is not None:
        m["group"] = group
    return msgpack.packb(m, use_bin_type=True)


def msg_frame(packed: bytes, seq: int, ts: int) -> dict[str, Any]:
    """A ``msg`` frame from a stored message and its seq and ts."""
    frame = {"t": "msg", **msgpack.unpackb(packed, raw=False)}
    frame["seq"] = seq
    frame["ts"] = ts
    return frame


async def store(
    pipe: Pipeline,
    scripts: Scripts,
    keys: Keys,
    *,
    user: str,
    packed: bytes,
    msg_id: str,
    retention_s: int,
    retention_count: int,
    idem_scope: str | None = None,
    idem_ttl_s: int = 600,
) -> None:
    """Queue the store of one message for ``user`` on ``pipe``; its reply parses with
    ``parse_stored``. Queue many (a group) and execute once: one round trip.

    A coroutine because redis-py's ``AsyncScript`` is one even on a pipeline (it only
    queues there): ``await store(pipe, ...)``, then ``await pipe.execute()``."""
    script_keys = [keys.seq(user), keys.inbox(user)]
    if idem_scope is not None:
        script_keys.append(keys.idem(user, idem_scope))
    await scripts.store(
        keys=script_keys,
        args=[packed, retention_s * 1000, retention_count, idem_ttl_s, msg_id],
        client=pipe,
    )


def parse_stored(reply: list[Any]) -> Stored:
    """Turn the store script's reply into ``Stored``."""
    flag, seq, ts, msg_id = reply
    if isinstance(msg_id, bytes):
        msg_id = msg_id.decode()
    return Stored(new=bool(flag), seq=int(seq), ts=int(ts), id=msg_id)


async def read_after(
    redis: Redis, keys: Keys, user: str, after_seq: int, count: int = 500
) -> list[dict[str, Any]]:
    """Up to ``count`` stored ``msg`` frames of ``user`` with seq > ``after_seq``, in order."""
    entries = await redis.xrange(keys.inbox(user), min=f"({after_seq}-0", max="+", count=count)
    frames = []
    for entry_id, fields in entries:
        seq = int(entry_id.split(b"-")[0] if isinstance(entry_id, bytes) else entry_id.split("-")[0])
        frames.append(msg_frame(fields[b"m"], seq, int(fields[b"ts"])))
    return frames
