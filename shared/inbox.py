"""Per-user inboxes: storing a message for one or many recipients and reading after a seq.

An inbox is a Redis stream whose entry ids are ``<seq>-0``, so "everything after
seq n" is one ``XRANGE``. An entry holds the message without ``seq``, ``ts`` and
``to`` (field ``m``, MessagePack of ``shared.message.message``: the inbox's owner is
the recipient, so one packed message serves every member of a group) and the time
it entered (field ``ts``); the seq is the entry id. The store scripts assign seq,
append and trim in one Lua call per batch of recipients (``lua/_store.lua``), which
is what makes seq gap-free under concurrency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis

from shared.keys import Keys
from shared.message import frame
from shared.scripts import Scripts, evalsha

__all__ = ["BATCH", "Delivery", "Retention", "Stored", "pack", "read_after", "store"]

BATCH = 500
"""Recipients per ``store_batch.lua`` call: one call holds Redis for about a millisecond."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long and how many messages an inbox keeps, and how long an idempotency key lives."""

    seconds: int
    count: int
    idempotency_s: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recipient's outcome of a store: ``new`` is False when it already had the message
    (an idempotent retry); ``ts`` when it entered this inbox; ``node`` is where the
    recipient's session is, or None."""

    to: str
    new: bool
    seq: int
    ts: int
    node: str | None


@dataclass(frozen=True, slots=True)
class Stored:
    """Outcome of a store: ``ts`` and ``id`` are the new message's, or the first answer's when
    a recipient already had it (a retry: ``repeat``); one ``Delivery`` per recipient."""

    ts: int
    id: str
    deliveries: list[Delivery]

    @property
    def repeat(self) -> bool:
        return any(not d.new for d in self.deliveries)


def pack(fields: dict[str, Any]) -> bytes:
    """The stored form of a message (``shared.message.message`` fields)."""
    return msgpack.packb(fields, use_bin_type=True)


async def store(
    redis: Redis,
    scripts: Scripts,
    keys: Keys,
    *,
    users: Sequence[str],
    packed: bytes,
    msg_id: str,
    retention: Retention,
    idem_scope: str | None = None,
) -> Stored:
    """Store ``packed`` (see ``pack``) in the inbox of each of ``users``, each with its own seq:
    one ``store_batch.lua`` call per ``BATCH`` recipients, all in one round trip. With
    ``idem_scope`` a recipient that already has the message gets nothing new."""
    args = [packed, retention.seconds * 1000, retention.count, retention.idempotency_s]
    args += [int(idem_scope is not None), msg_id]
    batches = [users[i : i + BATCH] for i in range(0, len(users), BATCH)]
    async with redis.pipeline(transaction=False) as pipe:
        for batch in batches:
            pipe.execute_command(
                *evalsha(scripts.store_batch, _recipient_keys(keys, batch, idem_scope), args)
            )
        replies = await scripts.execute(pipe)
    stored = [_parse(batch, reply) for batch, reply in zip(batches, replies, strict=True)]
    first = next((s for s in stored if s.repeat), stored[0]) if stored else Stored(0, msg_id, [])
    return Stored(first.ts, first.id, [d for s in stored for d in s.deliveries])


def _recipient_keys(keys: Keys, users: Sequence[str], idem_scope: str | None) -> list[str]:
    out: list[str] = []
    for user in users:
        out += (keys.seq(user), keys.inbox(user), keys.session(user))
        if idem_scope is not None:
            out.append(keys.idem(user, idem_scope))
    return out


def _parse(users: Sequence[str], reply: list[Any]) -> Stored:
    now, ts, msg_id, *flat = reply
    deliveries = [
        Delivery(user, bool(flat[i]), int(flat[i + 1]), int(now), _node(flat[i + 2]))
        for i, user in zip(range(0, len(flat), 3), users, strict=True)
    ]
    return Stored(int(ts), _text(msg_id), deliveries)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _node(value: bytes | str) -> str | None:
    return _text(value) or None


async def read_after(
    redis: Redis, keys: Keys, user: str, after_seq: int, count: int = 500
) -> list[dict[str, Any]]:
    """Up to ``count`` stored ``msg`` frames of ``user`` with seq > ``after_seq``, in order."""
    entries = await redis.xrange(keys.inbox(user), min=f"({after_seq}-0", max="+", count=count)
    frames = []
    for entry_id, fields in entries:
        seq = int(entry_id.split(b"-")[0] if isinstance(entry_id, bytes) else entry_id.split("-")[0])
        stored = msgpack.unpackb(fields[b"m"], raw=False)
        frames.append(frame(stored, seq=seq, ts=int(fields[b"ts"]), to=user))
    return frames
