"""shared.sessions over a real Redis: claims per device (duplicate login, device limit),
compare-and-delete release, the device list, sweep."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared import sessions
from shared.keys import Keys, bucket
from shared.scripts import Scripts
from shared.sessions import Ended


async def _where(redis: aioredis.Redis, keys: Keys, user: str) -> dict[str, tuple[str, str]]:
    """device -> (node, conn) of ``user``'s stored sessions."""
    return {d.device: (d.node, d.conn) for d in await sessions.devices(redis, keys, user)}


async def test_same_device_again_ends_the_older_session(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    assert await sessions.claim(redis, scripts, keys, "alice", "phone", "n1", "c1") == []
    ended = await sessions.claim(redis, scripts, keys, "alice", "phone", "n2", "c2")
    assert ended == [Ended("n1", "c1", "phone", "duplicate_login")]
    assert await redis.zscore(keys.online(bucket("alice")), "alice") == 0
    assert await redis.smembers(keys.node_sessions("n2", bucket("alice"))) == {b"alice/phone"}
    assert await _where(redis, keys, "alice") == {"phone": ("n2", "c2")}


async def test_devices_side_by_side_and_one_too_many_ends_the_longest_connected(
    redis: aioredis.Redis, prefix: str
) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    for i in range(3):
        assert await sessions.claim(redis, scripts, keys, "alice", f"d{i}", f"n{i % 2}", f"c{i}", 3) == []
    assert list(await _where(redis, keys, "alice")) == ["d0", "d1", "d2"]
    ended = await sessions.claim(redis, scripts, keys, "alice", "d3", "n1", "c3", 3)
    assert ended == [Ended("n0", "c0", "d0", "device_limit")]
    assert list(await _where(redis, keys, "alice")) == ["d1", "d2", "d3"]


async def test_stale_release_keeps_the_newer_session(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    await sessions.claim(redis, scripts, keys, "alice", "phone", "n1", "c1")
    await sessions.claim(redis, scripts, keys, "alice", "phone", "n1", "c2")
    await sessions.claim(redis, scripts, keys, "alice", "laptop", "n1", "c3")
    assert not await sessions.release(redis, scripts, keys, "alice", "phone", "n1", "c1")
    assert await _where(redis, keys, "alice") == {"phone": ("n1", "c2"), "laptop": ("n1", "c3")}
    assert await sessions.release(redis, scripts, keys, "alice", "phone", "n1", "c2")
    assert await redis.zscore(keys.online(bucket("alice")), "alice") == 0  # the laptop is still on
    assert await sessions.release(redis, scripts, keys, "alice", "laptop", "n1", "c3")
    assert await _where(redis, keys, "alice") == {}
    assert await redis.zscore(keys.online(bucket("alice")), "alice") is None
    assert await redis.smembers(keys.node_sessions("n1", bucket("alice"))) == set()


async def test_release_from_an_old_node_cleans_its_index(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    await sessions.claim(redis, scripts, keys, "alice", "phone", "n1", "c1")
    await sessions.claim(redis, scripts, keys, "alice", "phone", "n2", "c2")
    assert not await sessions.release(redis, scripts, keys, "alice", "phone", "n1", "*")
    assert await redis.smembers(keys.node_sessions("n1", bucket("alice"))) == set()
    assert await _where(redis, keys, "alice") == {"phone": ("n2", "c2")}


async def test_sweep_node(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    for user in ("a", "b", "c"):
        await sessions.claim(redis, scripts, keys, user, "phone", "dead", f"c-{user}")
    await sessions.claim(redis, scripts, keys, "a", "laptop", "dead", "c-a2")
    await sessions.claim(redis, scripts, keys, "c", "phone", "alive", "c-new")  # c moved away meanwhile
    assert await sessions.sweep_node(redis, scripts, keys, "dead") == 3
    assert await _where(redis, keys, "a") == {} and await _where(redis, keys, "b") == {}
    assert await _where(redis, keys, "c") == {"phone": ("alive", "c-new")}
    assert not await redis.exists(*(keys.node_sessions("dead", bucket(u)) for u in "abc"))
    assert await sessions.sweep_node(redis, scripts, keys, "dead") == 0
