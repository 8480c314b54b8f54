"""shared.sessions over a real Redis: claim, compare-and-delete release, lookup, sweep."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared import sessions
from shared.keys import Keys
from shared.scripts import Scripts
from shared.sessions import Session


async def _sessions(redis: aioredis.Redis, keys: Keys, users: list[str]) -> dict[str, Session]:
    """The stored sessions of the online ones among ``users``."""
    found = {}
    for user in users:
        node, conn = await redis.hmget(keys.session(user), "node", "conn")
        if node is not None:
            found[user] = Session(node.decode(), conn.decode())
    return found


async def test_claim_returns_the_replaced_session(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    assert await sessions.claim(redis, scripts, keys, "alice", "n1", "c1") is None
    assert await sessions.claim(redis, scripts, keys, "alice", "n2", "c2") == Session("n1", "c1")
    assert await redis.zscore(keys.online, "alice") == 0
    assert await redis.smembers(keys.node_sessions("n2")) == {b"alice"}
    assert await _sessions(redis, keys, ["alice", "bob"]) == {"alice": Session("n2", "c2")}


async def test_stale_release_keeps_the_newer_session(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    await sessions.claim(redis, scripts, keys, "alice", "n1", "c1")
    await sessions.claim(redis, scripts, keys, "alice", "n1", "c2")
    assert not await sessions.release(redis, scripts, keys, "alice", "n1", "c1")
    assert await _sessions(redis, keys, ["alice"]) == {"alice": Session("n1", "c2")}
    assert await sessions.release(redis, scripts, keys, "alice", "n1", "c2")
    assert await _sessions(redis, keys, ["alice"]) == {}
    assert await redis.zscore(keys.online, "alice") is None
    assert await redis.smembers(keys.node_sessions("n1")) == set()


async def test_release_from_an_old_node_cleans_its_index(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    await sessions.claim(redis, scripts, keys, "alice", "n1", "c1")
    await sessions.claim(redis, scripts, keys, "alice", "n2", "c2")
    assert not await sessions.release(redis, scripts, keys, "alice", "n1", "*")
    assert await redis.smembers(keys.node_sessions("n1")) == set()
    assert await _sessions(redis, keys, ["alice"]) == {"alice": Session("n2", "c2")}


async def test_sweep_node(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    for user in ("a", "b", "c"):
        await sessions.claim(redis, scripts, keys, user, "dead", f"c-{user}")
    await sessions.claim(redis, scripts, keys, "c", "alive", "c-new")  # c moved away meanwhile
    assert await sessions.sweep_node(redis, scripts, keys, "dead") == 2
    assert await _sessions(redis, keys, ["a", "b", "c"]) == {"c": Session("alive", "c-new")}
    assert not await redis.exists(keys.node_sessions("dead"))
    assert await sessions.sweep_node(redis, scripts, keys, "dead") == 0
