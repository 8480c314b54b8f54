"""``CIM_REDIS_WAIT``: a send answers 202 only once that many Redis replicas hold its store, else
503 ``unavailable``; a retry with the same ``client_msg_id`` is then safe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import redis.asyncio as aioredis

from cim_cli.ops.services import Service, start_redis
from tests.harness import envelope, eventually
from tests.route.conftest import MakeRoute


@pytest.fixture
async def replica(redis_service: Service, tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    """A replica of the suite's Redis for this test only (detached again afterwards)."""
    master = urlsplit(redis_service.url)
    service = start_redis(tmp_path / "replica", aof=False)
    client = aioredis.Redis.from_url(service.url)
    try:
        await client.config_set("masteruser", unquote(master.username or ""))
        await client.config_set("masterauth", unquote(master.password or ""))
        await client.replicaof(master.hostname, master.port)

        async def linked() -> bool:
            return (await client.info("replication")).get("master_link_status") == "up"

        await eventually(linked, what="the replica linked to its master")
        yield client
    finally:
        await client.aclose()
        service.stop()


async def test_without_a_replica_a_send_is_503_and_its_retry_is_safe(make_route: MakeRoute) -> None:
    route = await make_route(redis_wait=1, redis_wait_ms=100)
    ann, _ = await route.user("ann"), await route.user("bob")
    send = {"to": "bob", "body": "hi", "client_msg_id": "m-1"}
    envelope(await route.http.post("/messages", json=send, headers=ann), 503, "unavailable")
    envelope(await route.http.post("/messages", json=send, headers=ann), 503, "unavailable")
    await route.http.post("/groups", json={"name": "team", "members": ["bob"]}, headers=ann)
    group = {"body": "yo", "client_msg_id": "g-1"}
    envelope(await route.http.post("/groups/team/messages", json=group, headers=ann), 503, "unavailable")
    seq = await route.ctx.redis.get(route.ctx.keys.seq("bob"))
    assert int(seq) == 2  # the p2p message once (the retry found it), the group one once


async def test_with_a_replica_a_send_is_202(make_route: MakeRoute, replica: aioredis.Redis) -> None:
    route = await make_route(redis_wait=1, redis_wait_ms=2000)
    ann, _ = await route.user("ann"), await route.user("bob")
    resp = await route.http.post("/messages", json={"to": "bob", "body": "hi"}, headers=ann)
    assert resp.status_code == 202, resp.text
    await route.http.post("/groups", json={"name": "team", "members": ["bob"]}, headers=ann)
    resp = await route.http.post("/groups/team/messages", json={"body": "yo"}, headers=ann)
    assert resp.status_code == 202, resp.text
    assert int(await replica.get(route.ctx.keys.seq("bob"))) == 2  # on the replica already
