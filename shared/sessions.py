"""Who is connected where: the session of a user (node + connection id) in Redis.

A node claims a session at login and releases it at close. Release compares the
connection id, so the close of an old connection can never remove the session
of a newer login (on this node or another). ``sweep_node`` removes every session
still pointing at a node that died without closing them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import Keys
from shared.scripts import Scripts

__all__ = [
    "Session",
    "claim",
    "claimed",
    "queue_claim",
    "queue_lookup",
    "queue_release",
    "release",
    "restore_missing",
    "session_of",
    "sweep_node",
]


@dataclass(frozen=True, slots=True)
class Session:
    node: str
    conn: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def queue_lookup(pipe: Pipeline, keys: Keys, user: str) -> None:
    """Queue the read of ``user``'s session on ``pipe``; ``session_of`` reads its reply."""
    pipe.hmget(keys.session(user), "node", "conn")


def session_of(reply: list[bytes | str | None]) -> Session | None:
    """The session from the reply of ``queue_lookup``, or None when the user has none."""
    node, conn = reply
    return None if node is None else Session(_text(node), _text(conn) if conn else "")


def _session_keys(keys: Keys, user: str, node: str) -> list[str]:
    return [keys.session(user), keys.node_sessions(node), keys.online]


async def queue_claim(pipe: Pipeline, scripts: Scripts, keys: Keys, user: str, node: str, conn: str) -> None:
    """Queue ``claim`` on ``pipe`` (to share a round trip with other calls); ``claimed`` reads
    its reply. A coroutine: redis-py's script call is one even when it only queues."""
    await scripts.session_claim(
        keys=_session_keys(keys, user, node), args=[node, conn, int(time.time() * 1000), user], client=pipe
    )


def claimed(reply: list[bytes | str]) -> Session | None:
    """The session a claim replaced (from the reply of ``queue_claim``), or None."""
    return Session(_text(reply[0]), _text(reply[1])) if reply else None


async def claim(
    redis: Redis, scripts: Scripts, keys: Keys, user: str, node: str, conn: str
) -> Session | None:
    """Make ``conn`` on ``node`` the session of ``user``; return the session it replaced."""
    async with redis.pipeline(transaction=False) as pipe:
        await queue_claim(pipe, scripts, keys, user, node, conn)
        (reply,) = await scripts.execute(pipe)
    return claimed(reply)


async def queue_release(
    pipe: Pipeline, scripts: Scripts, keys: Keys, user: str, node: str, conn: str = "*"
) -> None:
    """Queue ``release`` on ``pipe``; its reply is truthy when the session was removed."""
    await scripts.session_release(keys=_session_keys(keys, user, node), args=[node, conn, user], client=pipe)


async def release(redis: Redis, scripts: Scripts, keys: Keys, user: str, node: str, conn: str = "*") -> bool:
    """Remove the session of ``user`` if it is still ``conn`` (``*``: any connection on ``node``)."""
    async with redis.pipeline(transaction=False) as pipe:
        await queue_release(pipe, scripts, keys, user, node, conn)
        (removed,) = await scripts.execute(pipe)
    return bool(removed)


async def sweep_node(redis: Redis, scripts: Scripts, keys: Keys, node: str) -> int:
    """Release every session still on ``node`` (it died or restarted); return how many."""
    users = [_text(u) for u in await redis.smembers(keys.node_sessions(node))]
    if not users:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for user in users:
            await queue_release(pipe, scripts, keys, user, node)
        pipe.delete(keys.node_sessions(node))
        replies = await scripts.execute(pipe)
    return sum(1 for r in replies[:-1] if r)


async def restore_missing(
    redis: Redis, scripts: Scripts, keys: Keys, node: str, live: dict[str, str]
) -> list[str]:
    """Put back the sessions of ``live`` connections (user -> connection id) on ``node`` that a
    route swept while the node looked dead (NATS unreachable past its registry TTL).

    Costs one ``SCARD`` while nothing is missing. Returns the users whose session now belongs
    to another connection: a newer login elsewhere, whose kick this node may have missed.
    """
    if await redis.scard(keys.node_sessions(node)) >= len(live):
        return []
    now = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for user, conn in live.items():
            await scripts.session_restore(
                keys=_session_keys(keys, user, node),
                args=[node, conn, now, user],
                client=pipe,
            )
        replies = await scripts.execute(pipe)
    return [user for user, reply in zip(live, replies, strict=True) if int(reply) < 0]
