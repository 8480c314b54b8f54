"""Who is connected where: a user's sessions, one per device (node + connection id), in Redis.

A user's sessions are one hash with a field per device (``lua/_session.lua``), so one user's
keys stay in one hash slot; the node's index (``keys.node_sessions``, one set per user bucket,
in that bucket's slot with the user's keys and ``online``) names ``user/device``, so a dead
node's sessions can still be swept (``views.node_members``). A node claims a device's session at login and
releases it at close. Release compares the connection id, so the close of an old connection can
never remove the session of a newer login (on this node or another). A claim ends the same
device's older session (``duplicate_login``) and, past ``max_devices``, the longest-connected
other devices (``device_limit``); the caller kicks what it ended.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from shared import views
from shared.keys import Keys, bucket
from shared.scripts import AnyPipeline, AnyRedis, Scripts, evalsha

__all__ = [
    "Device",
    "Ended",
    "Session",
    "claim",
    "claimed",
    "devices",
    "nodes",
    "queue_claim",
    "queue_release",
    "release",
    "restore_missing",
    "session_keys",
    "sweep_node",
]


@dataclass(frozen=True, slots=True)
class Session:
    node: str
    conn: str


@dataclass(frozen=True, slots=True)
class Ended(Session):
    """A session a claim ended: which device, and why (a ``KickReason`` value)."""

    device: str
    reason: str


@dataclass(frozen=True, slots=True)
class Device:
    """One online device of a user (``GET /me``)."""

    device: str
    node: str
    conn: str
    since: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def session_keys(keys: Keys, user: str, node: str) -> list[str]:
    """The KEYS of the session scripts: all in the slot of ``user``'s bucket."""
    b = bucket(user)
    return [keys.session(user), keys.node_sessions(node, b), keys.online(b)]


def queue_claim(
    pipe: AnyPipeline,
    scripts: Scripts,
    keys: Keys,
    user: str,
    device: str,
    node: str,
    conn: str,
    max_devices: int,
) -> None:
    """Queue ``claim`` on ``pipe`` (to share a round trip with other calls); ``claimed`` reads
    its reply."""
    args = [node, conn, int(time.time() * 1000), user, device, max_devices]
    pipe.execute_command(*evalsha(scripts.session_claim, session_keys(keys, user, node), args))


def claimed(reply: list[bytes | str]) -> list[Ended]:
    """The sessions a claim ended (from the reply of ``queue_claim``)."""
    values = [_text(v) for v in reply]
    return [Ended(*values[i : i + 4]) for i in range(0, len(values), 4)]


async def claim(
    redis: AnyRedis,
    scripts: Scripts,
    keys: Keys,
    user: str,
    device: str,
    node: str,
    conn: str,
    max_devices: int = 5,
) -> list[Ended]:
    """Make ``conn`` on ``node`` the session of ``user``'s ``device``; return the ones it ended."""
    async with redis.pipeline(transaction=False) as pipe:
        queue_claim(pipe, scripts, keys, user, device, node, conn, max_devices)
        (reply,) = await scripts.execute(pipe)
    return claimed(reply)


def queue_release(
    pipe: AnyPipeline, scripts: Scripts, keys: Keys, user: str, device: str, node: str, conn: str = "*"
) -> None:
    """Queue ``release`` on ``pipe``; its reply is truthy when the session was removed."""
    command = evalsha(scripts.session_release, session_keys(keys, user, node), [node, conn, user, device])
    pipe.execute_command(*command)


async def release(
    redis: AnyRedis, scripts: Scripts, keys: Keys, user: str, device: str, node: str, conn: str = "*"
) -> bool:
    """Remove the session of ``user``'s ``device`` if it is still ``conn`` (``*``: any
    connection on ``node``)."""
    async with redis.pipeline(transaction=False) as pipe:
        queue_release(pipe, scripts, keys, user, device, node, conn)
        (removed,) = await scripts.execute(pipe)
    return bool(removed)


async def devices(redis: AnyRedis, keys: Keys, user: str) -> list[Device]:
    """The online devices of ``user``, longest-connected first."""
    found = []
    for device, value in (await redis.hgetall(keys.session(user))).items():
        node, conn, since = _text(value).split(" ")
        found.append(Device(_text(device), node, conn, int(since)))
    return sorted(found, key=lambda d: (d.since, d.device))


def nodes(values: list[bytes | str]) -> list[str]:
    """The distinct nodes of a user's session hash values (its ``HVALS``)."""
    return sorted({_text(v).split(" ", 1)[0] for v in values})


async def sweep_node(redis: AnyRedis, scripts: Scripts, keys: Keys, node: str) -> int:
    """Release every session still on ``node`` (it died or restarted); return how many.

    One pipeline reads the node's index (a set per bucket), one releases what it holds and
    deletes the sets that held something."""
    members = await views.node_members(redis, keys, node)
    if not members:
        return 0
    emptied = sorted({bucket(member.partition("/")[0]) for member in members})
    async with redis.pipeline(transaction=False) as pipe:
        for member in members:
            user, _, device = member.partition("/")
            queue_release(pipe, scripts, keys, user, device, node)
        for b in emptied:
            pipe.delete(keys.node_sessions(node, b))
        replies = await scripts.execute(pipe)
    return sum(1 for r in replies[: len(members)] if r)


async def restore_missing(
    redis: AnyRedis, scripts: Scripts, keys: Keys, node: str, live: dict[tuple[str, str], str]
) -> list[tuple[str, str]] | None:
    """Put back the sessions of ``live`` connections ((user, device) -> connection id) on
    ``node`` that a route swept while the node looked dead (NATS unreachable past its registry
    TTL).

    Costs one pipeline of ``SCARD`` (one per bucket the live connections' users are in) while
    nothing is missing. Returns None when nothing was missing, else the (user, device) whose
    session now belongs to another connection: a newer login elsewhere, whose kick this node may
    have missed (the others were put back).
    """
    wanted = Counter(bucket(user) for user, _ in live)
    async with redis.pipeline(transaction=False) as pipe:
        for b in wanted:
            pipe.scard(keys.node_sessions(node, b))
        held = await pipe.execute()
    if all(int(n) >= wanted[b] for b, n in zip(wanted, held, strict=True)):
        return None
    now = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for (user, device), conn in live.items():
            args = [node, conn, now, user, device]
            pipe.execute_command(*evalsha(scripts.session_restore, session_keys(keys, user, node), args))
        replies = await scripts.execute(pipe)
    return [who for who, reply in zip(live, replies, strict=True) if int(reply) < 0]
