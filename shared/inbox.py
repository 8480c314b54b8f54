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
from redis.asyncio.client import Pipeline

from shared.durability import Wait
from shared.keys import Keys, bucket
from shared.message import frame, message
from shared.scripts import AnyRedis, Scripts, evalsha, is_cluster

__all__ = [
    "BATCH",
    "Batch",
    "Delivery",
    "Retention",
    "Stored",
    "msg_frame",
    "pack",
    "pack_message",
    "parse_stored",
    "read_after",
    "store",
    "store_many",
]

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
    (an idempotent retry); ``ts`` when it entered this inbox; ``nodes`` are where the
    recipient's devices are connected (none: offline); ``carbon``: this is the sender's copy."""

    to: str
    new: bool
    seq: int
    ts: int
    nodes: tuple[str, ...]
    carbon: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """Outcome of a one-recipient ``store``: ``new`` is False when an idempotency key matched
    (then seq, ts and id are the first answer's)."""

    new: bool
    seq: int
    ts: int
    id: str


@dataclass(frozen=True, slots=True)
class Batch:
    """Outcome of ``store_many``: ``ts`` and ``id`` are the new message's, or the first answer's
    when a recipient already had it (a retry: ``repeat``); one ``Delivery`` per recipient."""

    ts: int
    id: str
    deliveries: list[Delivery]

    @property
    def repeat(self) -> bool:
        return any(not d.new for d in self.deliveries)


def pack(fields: dict[str, Any]) -> bytes:
    """The stored form of a message (``shared.message.message`` fields)."""
    return msgpack.packb(fields, use_bin_type=True)


def pack_message(*, id: str, kind: str, sender: str, to: str, body: str, group: str | None = None) -> bytes:
    """The stored form of one message with its recipient in it (``pack`` leaves ``to`` out)."""
    return pack({**message(id=id, kind=kind, sender=sender, body=body, group=group), "to": to})


def msg_frame(packed: bytes, seq: int, ts: int) -> dict[str, Any]:
    """The ``msg`` frame of a ``pack_message`` form and its seq and ts."""
    return frame(msgpack.unpackb(packed, raw=False), seq=seq, ts=ts)


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
    """Queue the store of one message for ``user`` on ``pipe`` (its reply parses with
    ``parse_stored``); queue many and execute once for one round trip. A coroutine because
    redis-py's ``AsyncScript`` is one even on a pipeline (it only queues there); one Redis
    only (a cluster pipeline does not take a script object: ``store_many`` works on both)."""
    await scripts.store_batch(
        keys=_recipient_keys(keys, [user], idem_scope),
        args=_args(packed, Retention(retention_s, retention_count, idem_ttl_s), idem_scope, msg_id),
        client=pipe,
    )


def parse_stored(reply: list[Any]) -> Stored:
    """Turn the reply of a ``store`` into ``Stored``."""
    _, ts, msg_id, new, seq, _ = reply
    return Stored(new=bool(new), seq=int(seq), ts=int(ts), id=_text(msg_id))


async def store_many(
    redis: AnyRedis,
    scripts: Scripts,
    keys: Keys,
    *,
    users: Sequence[str],
    packed: bytes,
    msg_id: str,
    retention: Retention,
    idem_scope: str | None = None,
    carbon: tuple[str, bytes] | None = None,
    then: Sequence[tuple[Any, ...]] = (),
    wait: Wait | None = None,
) -> Batch:
    """Store ``packed`` (see ``pack``) in the inbox of each of ``users``, each with its own seq:
    one ``store_batch.lua`` call per ``BATCH`` recipients (on a Redis Cluster: per user bucket,
    a script's keys being of one slot), all in one round trip (one per master). With
    ``idem_scope`` a recipient that already has the message gets nothing new. ``carbon``
    (sender, its packed copy) stores the sender's copy too, in the last call (its ``Delivery``
    is the last, ``carbon`` True); ``then``: more commands for the same round trip; ``wait``:
    end it with a ``WAIT`` (``Unconfirmed`` when too few replicas confirm)."""
    args = _args(packed, retention, idem_scope, msg_id)
    batches = _batches(users, is_cluster(redis))
    if carbon is not None:
        if is_cluster(redis) or not batches:
            batches.append([])  # the carbon in the sender's own slot
        batches[-1].append(carbon[0])
    async with redis.pipeline(transaction=False) as pipe:
        for i, batch in enumerate(batches):
            last = carbon is not None and i == len(batches) - 1
            pipe.execute_command(
                *evalsha(
                    scripts.store_batch,
                    _recipient_keys(keys, batch, idem_scope),
                    [*args, carbon[1]] if last and carbon is not None else args,
                )
            )
        for command in then:
            pipe.execute_command(*command)
        if wait is not None:
            pipe.execute_command(*wait.command)
        replies = await scripts.execute(pipe)
    if wait is not None:
        wait.check(replies[-1])
    stored = [_parse(batch, reply) for batch, reply in zip(batches, replies, strict=False)]
    if carbon is not None:
        *others, own = stored[-1].deliveries
        stored[-1] = Batch(stored[-1].ts, stored[-1].id, [*others, _as_carbon(own)])
    first = next((s for s in stored if s.repeat), stored[0]) if stored else Batch(0, msg_id, [])
    return Batch(first.ts, first.id, [d for s in stored for d in s.deliveries])


def _batches(users: Sequence[str], per_bucket: bool) -> list[list[str]]:
    """The recipients of each ``store_batch.lua`` call: ``BATCH`` at a time, or (``per_bucket``)
    the ones of each user bucket, at most ``BATCH`` at a time."""
    if not per_bucket:
        return [list(users[i : i + BATCH]) for i in range(0, len(users), BATCH)]
    by_bucket: dict[int, list[str]] = {}
    for user in users:
        by_bucket.setdefault(bucket(user), []).append(user)
    return [group[i : i + BATCH] for group in by_bucket.values() for i in range(0, len(group), BATCH)]


def _as_carbon(d: Delivery) -> Delivery:
    return Delivery(d.to, d.new, d.seq, d.ts, d.nodes, carbon=True)


def _args(packed: bytes, retention: Retention, idem_scope: str | None, msg_id: str) -> list[Any]:
    return [
        packed,
        retention.seconds * 1000,
        retention.count,
        retention.idempotency_s,
        int(idem_scope is not None),
        msg_id,
    ]


def _recipient_keys(keys: Keys, users: Sequence[str], idem_scope: str | None) -> list[str]:
    out: list[str] = []
    for user in users:
        out += (keys.seq(user), keys.inbox(user), keys.session(user))
        if idem_scope is not None:
            out.append(keys.idem(user, idem_scope))
    return out


def _parse(users: Sequence[str], reply: list[Any]) -> Batch:
    now, ts, msg_id, *flat = reply
    deliveries = [
        Delivery(user, bool(flat[i]), int(flat[i + 1]), int(now), tuple(_text(flat[i + 2]).split()))
        for i, user in zip(range(0, len(flat), 3), users, strict=True)
    ]
    return Batch(int(ts), _text(msg_id), deliveries)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_after(
    redis: AnyRedis, keys: Keys, user: str, after_seq: int, count: int = 500
) -> list[dict[str, Any]]:
    """Up to ``count`` stored ``msg`` frames of ``user`` with seq > ``after_seq``, in order
    (``to`` is ``user``, but a carbon's is its addressee)."""
    entries = await redis.xrange(keys.inbox(user), min=f"({after_seq}-0", max="+", count=count)
    frames = []
    for entry_id, fields in entries:
        seq = int(entry_id.split(b"-")[0] if isinstance(entry_id, bytes) else entry_id.split("-")[0])
        stored = msgpack.unpackb(fields[b"m"], raw=False)
        # A carbon keeps its addressee as ``to``; everything else is the inbox owner's.
        frames.append(frame(stored, seq=seq, ts=int(fields[b"ts"]), to=stored.get("to", user)))
    return frames
