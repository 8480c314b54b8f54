"""The servers of ``cim up --ha`` and their faults: Redis Cluster members that refuse the default
user and replace a SIGKILLed master by its replica (with the write it confirmed), and a route and
a node that keep working when the nats-server they are connected to is SIGKILLed.

The route and the nodes here keep their data in the session's single Redis: until every Lua
script is single-slot they cannot run on the Redis Cluster (``tests/system/test_ha.py`` has the
end-to-end ``cim up --ha`` tests).
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import nats
import pytest
from redis.exceptions import AuthenticationError, NoPermissionError

from cim_cli.ops.services import Service
from cim_cli.ops.supervisor import Supervisor
from cim_client import AdminClient, Client
from shared.durability import Wait
from shared.links import nats_options, redis_client
from tests.ha_rig import HaRig
from tests.harness import API_KEY


async def test_redis_cluster_members_refuse_the_default_user_and_a_restart_finds_its_cluster(
    tmp_path: Path,
) -> None:
    async with HaRig(tmp_path) as rig:
        for member in rig.redis_cluster.services:
            addr = f"{member.host}:{member.port}"
            anonymous = rig.client(addr, user=None)
            with pytest.raises(AuthenticationError):
                await anonymous.ping()
            await anonymous.aclose()
            cim = rig.client(addr)
            assert await cim.ping()
            with pytest.raises(NoPermissionError):
                await cim.config_get("*")
            await cim.aclose()
        cluster = redis_client(rig.redis_cluster.url())
        await cluster.set("ha:{a}", b"1")
        await cluster.set("ha:{b}", b"2")
        await cluster.aclose()
        addresses = rig.redis_cluster.addresses

    # The same data folder again (as a second `cim up --ha`): same ports, same cluster, same data.
    async with HaRig(tmp_path) as rig:
        assert rig.redis_cluster.addresses == addresses
        cluster = redis_client(rig.redis_cluster.url())
        assert [await cluster.get("ha:{a}"), await cluster.get("ha:{b}")] == [b"1", b"2"]
        await cluster.aclose()
    assert _modes(tmp_path, "nats-?", "redis-?") == {0o700}
    assert _modes(tmp_path, "ha.json", "nats-?.conf", "redis-?.conf") == {0o600}


def _modes(folder: Path, *patterns: str) -> set[int]:
    """The modes of what ``patterns`` match in ``folder`` (and of ``folder`` itself, for folders)."""
    found = [p for pattern in patterns for p in folder.glob(pattern)]
    assert len(found) >= len(patterns)
    extra = [folder] if all(p.is_dir() for p in found) else []
    return {p.stat().st_mode & 0o777 for p in found + extra}


async def test_a_killed_redis_master_is_replaced_by_its_replica_with_the_write_it_confirmed(
    ha_rig: HaRig,
) -> None:
    key, value = f"ha:{{{secrets.token_hex(4)}}}:k", b"kept"
    master = await ha_rig.redis_master_for(key)
    direct = ha_rig.client(master)
    wait = Wait(1, 1000)
    async with direct.pipeline(transaction=False) as pipe:
        pipe.set(key, value).execute_command(*wait.command)
        _, confirmed = await pipe.execute()
    wait.check(confirmed)  # one replica holds it
    await direct.aclose()

    cluster = redis_client(ha_rig.redis_cluster.url())
    assert await cluster.get(key) == value  # the client learned the slot map before the kill
    await ha_rig.kill_redis(master)
    assert await ha_rig.redis_master_for(key) != master
    assert await cluster.get(key) == value
    await cluster.set(key, b"after")

    # Supervised as by cim up, the killed member is started again with its data: it rejoins as
    # the replica of the one promoted in its place.
    err = io.StringIO()
    async with Supervisor(ha_rig.redis_cluster.services, err):
        await ha_rig.redis_cluster.wait_healthy(30.0)
    assert f"{ha_rig.member_name(master)} restarted" in err.getvalue()
    assert await ha_rig.role(master) == "slave"
    assert await cluster.get(key) == b"after"
    await cluster.aclose()


async def test_route_and_node_keep_working_when_their_nats_server_is_killed(
    ha_rig: HaRig, redis_service: Service, prefix: str
) -> None:
    single = {"redis_url": redis_service.url, "redis_prefix": prefix}
    await ha_rig.start(nodes=1, node_env=single, **single)
    nc = await nats.connect(**nats_options(ha_rig.local.nats_url))
    try:
        info = await nc.jetstream().stream_info("KV_cim-nodes")
        assert info.config.num_replicas == 3
    finally:
        await nc.close()

    async with (
        Client(ha_rig.route_url, "ann", "password123") as ann,
        AdminClient(ha_rig.route_url, API_KEY) as admin,
    ):
        await ann.register()
        await ann.connect()
        route_server = await ha_rig.nats_server_of("route")
        node_server = await ha_rig.nats_server_of("node-1")
        await ha_rig.kill_nats(route_server)
        if node_server != route_server:  # the node's server too, once the first is back
            await ha_rig.restart_nats_server(route_server)
            await ha_rig.kill_nats(node_server)

        await ha_rig.bucket_answers()  # the two left elected the bucket's leader

        # The route's registry watch still works: a node started now appears in GET /nodes ...
        await ha_rig.add_node("node-2", **single)
        await ha_rig.wait_nodes(lambda ids: ids == {"node-1", "node-2"}, what="both nodes listed")
        # ... and a push still reaches a client connected to the node before the kill.
        await admin.push(["ann"], "after the kill")
        got = await ann.next_message(10)
        assert got.body == "after the kill"
