"""Fixtures: real nats-server and redis-server processes on free ports, stopped afterwards.

The one place tests get their servers from. ``nats_service`` and
``redis_service`` are shared by a whole session (tests isolate themselves with
a key prefix; ``redis`` and ``nc`` are clients of them); ``cluster`` starts its
own servers, route and nodes as subprocesses (``tests.harness.Cluster``), so a
fault test can kill any of them; ``redis_cluster`` is a 3-master Redis Cluster for the tests
that run the route or a node on one (started by the first of them, once); ``ha_rig`` the clusters
of ``cim up --ha`` (``tests.ha_rig``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient

from cim_cli.ops.services import Service, start_nats, start_redis
from tests.ha_rig import HaRig
from tests.harness import SECRET, Cluster
from tests.redis_cluster import RedisClusterRig


@pytest.fixture(scope="session")
def nats_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_nats(tmp_path_factory.mktemp("nats"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_redis(tmp_path_factory.mktemp("redis"), aof=False)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterRig]:
    rig = RedisClusterRig.start(tmp_path_factory.mktemp("redis-cluster"))
    yield rig
    rig.stop()


@pytest.fixture
def prefix() -> str:
    """A Redis key prefix of this test's own."""
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
async def redis(redis_service: Service) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_service.url)
    yield client
    await client.aclose()


@pytest.fixture
async def nc(nats_service: Service) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_service.url)
    yield client
    await client.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A route and two nodes on their own NATS and Redis."""
    async with Cluster(tmp_path, secret=SECRET) as c:
        await c.start(nodes=2)
        yield c


@pytest.fixture
async def ha_rig(tmp_path: Path) -> AsyncIterator[HaRig]:
    """The servers of ``cim up --ha`` (3 NATS, 3+3 Redis), no route or node yet."""
    async with HaRig(tmp_path) as rig:
        yield rig
