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

from shared.keys import Keys
from shared.scripts import Scripts

__all__ = [
    "Session",
    "claim",
    "release",
    "restore_missing",
    "sweep_node",
]


@dataclass(frozen=True, slots=True)
class Session:
    node: str
    conn: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def claim(
    redis: Redis, scripts: Scripts, keys: Keys, user: str, node: str, conn: str
) -> Session | None:
    """Make ``conn`` on ``node`` the session of ``user``; return the session it replaced."""
    old = await scripts.session_claim(
        keys=[keys.session(user), keys.node_sessions(node), keys.online],
        args=[node, conn, int(time.time() * 1000), user],
        client=redis,
    )
    return Session(_text(old[0]), _text(old[1])) if old else None


async def release(redis: Redis, scripts: Scripts, keys: Keys, user: str, node: str, conn: str = "*") -> bool:
    """Remove the session of ``user`` if it is still ``conn`` (``*``: any connection on ``node``)."""
    removed = await scripts.session_release(
        keys=[keys.session(user), keys.node_sessions(node), keys.online],
        args=[node, conn, user],
        client=redis,
    )
    return bool(removed)


async def sweep_node(redis: Redis, scripts: Scripts, keys: Keys, node: str) -> int:
    """Release every session still on ``node`` (it died or restarted); return how many."""
    users = [_text(u) for u in await redis.smembers(keys.node_sessions(node))]
    if not users:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for user in users:
            await scripts.session_release(
                keys=[keys.session(user), keys.node_sessions(node), keys.online],
                args=[node, "*", user],
                client=pipe,
            )
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
                keys=[keys.session(user), keys.node_sessions(node), keys.online],
                args=[node, conn, now, user],
                client=pipe,
            )
        replies = await scripts.execute(pipe)
    return [user for user, reply in zip(live, replies, strict=True) if int(reply) < 0]
