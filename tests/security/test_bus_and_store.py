"""The bus and the store of a ``cim up`` cluster (``LocalCluster``) are closed to strangers, and
each cim process can do only what its role needs (issue 10, item 1)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from redis.exceptions import AuthenticationError, NoPermissionError

from shared import bus
from shared.links import connect_once
from shared.registry import NodeInfo
from shared.registry_nats import NatsKvRegistry
from tests.harness import SECRET, Cluster, eventually


@pytest.fixture
async def two_nodes(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path, secret=SECRET) as c:
        await c.start(nodes=2)
        yield c


def _user_url(cluster: Cluster, user: str) -> str:
    local = cluster.local
    assert local.nats_auth is not None and local.nats is not None
    return local.nats_auth.url(user, local.host, local.nats.port)


async def _connect_as(cluster: Cluster, user: str, errors: list[str] | None = None) -> Nats:
    async def on_error(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    return await connect_once(_user_url(cluster, user), error_cb=on_error)


async def test_nats_and_redis_refuse_connections_without_credentials(two_nodes: Cluster) -> None:
    nats_port, redis_port = two_nodes.nats.port, two_nodes.redis.port
    for url in (f"nats://127.0.0.1:{nats_port}", f"nats://route:guess@127.0.0.1:{nats_port}"):
        with pytest.raises(NatsError, match="Authorization Violation"):
            await connect_once(url)
    for stranger in (aioredis.Redis(port=redis_port), aioredis.Redis(port=redis_port, username="default")):
        try:
            with pytest.raises(AuthenticationError):
                await stranger.get("cim:anything")
        finally:
            await stranger.aclose()
    # Both listen on loopback only.
    conf = (two_nodes.local.data_dir / "nats.conf").read_text()
    assert f'"listen": "127.0.0.1:{nats_port}"' in conf
    assert "bind 127.0.0.1\n" in (two_nodes.local.data_dir / "redis.conf").read_text()


async def test_a_node_cannot_deliver_to_another_nodes_users(two_nodes: Cluster) -> None:
    ann = await two_nodes.register("ann")
    victim = next(n for n in two_nodes.nodes if n != ann["node"]["id"])
    other = ann["node"]["id"]
    errors: list[str] = []
    listener = await _connect_as(two_nodes, victim)  # what the victim node receives
    attacker = await _connect_as(two_nodes, other, errors)
    route = await _connect_as(two_nodes, "route")
    try:
        sub = await listener.subscribe(bus.node_subject(victim))
        await listener.flush()
        forged = bus.msgs([{"t": "msg", "id": "x", "seq": 1, "kind": "p2p", "from": "admin", "to": "ann"}])
        await attacker.publish(bus.node_subject(victim), forged)
        await attacker.publish(bus.BROADCAST_SUBJECT, forged)
        await attacker.flush()
        await eventually(lambda: _true(_violations(errors) == 2), what="two violations")
        # The route may: its payload arrives, the forged one never did.
        allowed = bus.kick("nobody", "revoked")
        await route.publish(bus.node_subject(victim), allowed)
        await route.flush()
        assert (await sub.next_msg(5)).data == allowed  # the first and only one
        assert sub.pending_msgs == 0
        # A node may still kick a replaced session elsewhere, on the kick subject only.
        await attacker.publish(bus.kick_subject(victim), bus.kick("nobody", "duplicate_login"))
        await attacker.flush()
        await route.flush()
        assert _violations(errors) == 2, errors
    finally:
        for nc in (listener, attacker, route):
            await nc.close()


async def _true(value: bool) -> bool:
    return value


def _violations(errors: list[str]) -> int:
    """How many of the errors NATS reported are permission violations."""
    return sum("permissions violation" in e.lower() for e in errors)


async def test_a_node_cannot_write_another_nodes_registry_record(two_nodes: Cluster) -> None:
    first, second = sorted(two_nodes.nodes)
    errors: list[str] = []
    attacker = await _connect_as(two_nodes, first, errors)
    route = await _connect_as(two_nodes, "route")
    try:
        registry = await NatsKvRegistry.open(attacker.jetstream(timeout=1), refresh_s=1)
        for forged in (second, "ghost"):
            with pytest.raises((NatsError, TimeoutError)):  # no acknowledgement: the server dropped it
                await registry.announce(NodeInfo(id=forged, host="203.0.113.7", port=9999))
        assert _violations(errors) == 2, errors
        await registry.announce(NodeInfo(id=first, host="127.0.0.1", port=two_nodes.nodes[first].port))
        nodes = await (await NatsKvRegistry.open(route.jetstream(), refresh_s=1)).snapshot()
        assert nodes[second].host == "127.0.0.1" and "ghost" not in nodes
    finally:
        await attacker.close()
        await route.close()


async def test_cims_redis_user_cannot_reconfigure_or_dump_the_server(two_nodes: Cluster) -> None:
    redis = aioredis.Redis.from_url(two_nodes.local.redis_url)
    try:
        await redis.set("cim:probe", "1")  # what cim needs works
        assert await redis.get("cim:probe") == b"1"
        for command in (
            ("CONFIG", "GET", "dir"),
            ("CONFIG", "SET", "dir", "/tmp"),
            ("SAVE",),
            ("BGSAVE",),
            ("DEBUG", "SLEEP", "0"),
            ("MODULE", "LIST"),
            ("FLUSHALL",),
            ("KEYS", "*"),
            ("ACL", "LIST"),
            ("SHUTDOWN",),
        ):
            with pytest.raises(NoPermissionError):
                await redis.execute_command(*command)
    finally:
        await redis.aclose()


async def test_a_process_without_or_with_refused_credentials_exits_2(two_nodes: Cluster) -> None:
    local = two_nodes.local
    nats_port, redis_port = two_nodes.nats.port, two_nodes.redis.port
    good_nats, good_redis = _user_url(two_nodes, "node-1"), local.redis_url
    cases = [
        ("cim_node", f"nats://127.0.0.1:{nats_port}", good_redis, "has no user"),
        ("cim_node", good_nats, f"redis://127.0.0.1:{redis_port}/0", "has no password"),
        ("cim_node", f"nats://node-1:wrong@127.0.0.1:{nats_port}", good_redis, "NATS at"),
        ("cim_node", good_nats, good_redis.replace("cim:", "cim:wrong"), "Redis at"),
        ("cim_route", f"nats://route:wrong@127.0.0.1:{nats_port}", good_redis, "refused the credentials"),
    ]
    for module, nats_url, redis_url, needle in cases:
        env = {
            **os.environ,
            "CIM_SECRET": SECRET,
            "CIM_NATS_URL": nats_url,
            "CIM_REDIS_URL": redis_url,
            "CIM_NODE_ID": "node-1",
            "CIM_NODE_PORT": "0",
            "CIM_ROUTE_PORT": "0",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(20):
            _, err = await proc.communicate()
        assert proc.returncode == 2, (module, needle, err.decode())
        assert needle in err.decode(), err.decode()
        assert "wrong" not in err.decode()  # a password is never printed
