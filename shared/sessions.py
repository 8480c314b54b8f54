"""Who is connected where: a user's sessions, one per device (node + connection id), in Redis.

A user's sessions are one hash with a field per device (``lua/_session.lua``), so one user's
keys stay in one hash slot; the node's index (``keys.node_sessions``) names ``user/device``, so
a dead node's sessions can still be swept. A node claims a device's session at login and
releases it at close. Release compares the connection id, so the close of an old connection can
never remove the session of a newer login (on this node or another). A claim ends the same
device's older session (``duplicate_login``) and, past ``max_devices``, the longest-connected
other devices (``device_limit``); the caller kicks what it ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import Keys
from shared.scripts import Scripts

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


def _session_keys(keys: Keys, user: str, node: str) -> list[str]:
    return [keys.session(user), keys.node_sessions(node), keys.online]


async def queue_claim(
    pipe: Pipeline,
    scripts: Scripts,
    keys: Keys,
    user: str,
    device: str,
    node: str,
    conn: str,
    max_devices: int,
) -> None:
    """Queue ``claim`` on ``pipe`` (to share a round trip with other calls); ``claimed`` reads
    its reply. A coroutine: redis-py's script call is one even when it only queues."""
    await scripts.session_claim(
        keys=_session_keys(keys, user, node),
        args=[node, conn, int(time.time() * 1000), user, device, max_devices],
        client=pipe,
    )


def claimed(reply: list[bytes | str]) -> list[Ended]:
    """The sessions a claim ended (from the reply of ``queue_claim``)."""
    values = [_text(v) for v in reply]
    return [Ended(*values[i : i + 4]) for i in range(0, len(values), 4)]


async def claim(
    redis: Redis,
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
        await queue_claim(pipe, scripts, keys, user, device, node, conn, max_devices)
        (reply,) = await scripts.execute(pipe)
    return claimed(reply)


async def queue_release(
    pipe: Pipeline, scripts: Scripts, keys: Keys, user: str, device: str, node: str, conn: str = "*"
) -> None:
    """Queue ``release`` on ``pipe``; its reply is truthy when the session was removed."""
    await scripts.session_release(
        keys=_session_keys(keys, user, node), args=[node, conn, user, device], client=pipe
    )


async def release(
    redis: Redis, scripts: Scripts, keys: Keys, user: str, device: str, node: str, conn: str = "*"
) -> bool:
    """Remove the session of ``user``'s ``device`` if it is still ``conn`` (``*``: any
    connection on ``node``)."""
    async with redis.pipeline(transaction=False) as pipe:
        await queue_release(pipe, scripts, keys, user, device, node, conn)
        (removed,) = await scripts.execute(pipe)
    return bool(removed)


async def devices(redis: Redis, keys: Keys, user: str) -> list[Device]:
    """The online devices of ``user``, longest-connected first."""
    found = []
    for device, value in (await redis.hgetall(keys.session(user))).items():
        node, conn, since = _text(value).split(" ")
        found.append(Device(_text(device), node, conn, int(since)))
    return sorted(found, key=lambda d: (d.since, d.device))


def nodes(values: list[bytes | str]) -> list[str]:
    """The distinct nodes of a user's session hash values (its ``HVALS``)."""
    return sorted({_text(v).split(" ", 1)[0] for v in values})


async def sweep_node(redis: Redis, scripts: Scripts, keys: Keys, node: str) -> int:
    """Release every session still on ``node`` (it died or restarted); return how many."""
    members = [_text(m) for m in await redis.smembers(keys.node_sessions(node))]
    if not members:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for member in members:
            user, _, device = member.partition("/")
            await queue_release(pipe, scripts, keys, user, device, node)
        pipe.delete(keys.node_sessions(node))
        replies = await scripts.execute(pipe)
    return sum(1 for r in replies[:-1] if r)


async def restore_missing(
    redis: Redis, scripts: Scripts, keys: Keys, node: str, live: dict[tuple[str, str], str]
) -> list[tuple[str, str]]:
    """Put back the sessions of ``live`` connections ((user, device) -> connection id) on
    ``node`` that a route swept while the node looked dead (NATS unreachable past its registry
    TTL).

    Costs one ``SCARD`` while nothing is missing. Returns the (user, device) whose session now
    belongs to another connection: a newer login elsewhere, whose kick this node may have missed.
    """
    if await redis.scard(keys.node_sessions(node)) >= len(live):
        return []
    now = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for (user, device), conn in live.items():
            await scripts.session_restore(
                keys=_session_keys(keys, user, node),
                args=[node, conn, now, user, device],
                client=pipe,
            )
        replies = await scripts.execute(pipe)
    return [who for who, reply in zip(live, replies, strict=True) if int(reply) < 0]
