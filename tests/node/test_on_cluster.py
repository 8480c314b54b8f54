"""A node on a 3-master Redis Cluster (issue 11): login (token checks, session claim), the
replay of stored messages, acks, a duplicate login on another node, the release at close and
the sweep of the node's sessions -- each a script of one slot through the cluster client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cim_node.server import NodeServer
from shared import inbox, links, sessions, views
from shared.keys import Keys, bucket
from shared.scripts import AnyRedis, Scripts
from tests.harness import eventually
from tests.node.conftest import NodeFactory
from tests.redis_cluster import RedisClusterRig

USERS = [f"u{i:02d}" for i in range(8)]


@pytest.fixture
async def cluster_redis(redis_cluster: RedisClusterRig) -> AsyncIterator[AnyRedis]:
    client = links.redis_client(redis_cluster.url)
    yield client
    await client.aclose()


async def _store(redis: AnyRedis, keys: Keys, users: list[str], body: str) -> None:
    packed = inbox.pack({"id": body, "kind": "push", "from": "system", "body": body})
    retention = inbox.Retention(3600, 100, 60)
    await inbox.store_many(
        redis, Scripts.register(redis), keys, users=users, packed=packed, msg_id=body, retention=retention
    )


async def _acked(redis: AnyRedis, keys: Keys, user: str) -> bool:
    return await redis.get(keys.ack(user)) == b"1"


async def test_login_replay_ack_kick_release_and_sweep(
    make_node: NodeFactory, clients, redis_cluster: RedisClusterRig, cluster_redis: AnyRedis, prefix: str
) -> None:
    keys = Keys(prefix)
    a: NodeServer = await make_node(redis_url=redis_cluster.url, ack_flush_ms=20)
    b: NodeServer = await make_node(redis_url=redis_cluster.url)
    await _store(cluster_redis, keys, USERS, "stored")
    await cluster_redis.script_flush()  # the node loads them again (NOSCRIPT) on every master
    conns = {}
    for user in USERS:
        conns[user] = c = await clients(a)
        await c.login(user, last_seq=0)
        [msg] = await c.recv_msgs(1)
        assert (msg["body"], msg["seq"]) == ("stored", 1)
        await c.send({"t": "ack", "seq": 1})
    for user in USERS:
        await eventually(lambda u=user: _acked(cluster_redis, keys, u), timeout=3, what=f"ack of {user}")
    assert (await views.online_page(cluster_redis, keys, "u", 100)) == (USERS, len(USERS))
    assert len({bucket(u) for u in USERS}) > 1

    again = await clients(b)
    await again.login(USERS[0])  # the same device on another node
    assert await conns[USERS[0]].expect_closed() == [{"t": "kick", "reason": "duplicate_login"}]
    assert [d.node for d in await sessions.devices(cluster_redis, keys, USERS[0])] == [b.id]
    await conns[USERS[1]].send({"t": "bye"})
    assert await conns[USERS[1]].expect_closed() == []

    async def released() -> bool:
        return not await cluster_redis.exists(keys.session(USERS[1]))

    await eventually(released, timeout=3, what="the session released at close")
    await a.stop(timeout=5)  # its sessions are swept as it stops
    assert await views.node_members(cluster_redis, keys, a.id) == []
    assert await views.online_page(cluster_redis, keys, "u", 100) == ([USERS[0]], 1)
