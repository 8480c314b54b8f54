"""Helpers of the SDK tests that other test modules use too: one real cluster per module
(``cluster``, import it into the module) and ``user``, a registered and connected client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from cim_client import Client
from tests.conftest import SECRET
from tests.harness import Cluster

__all__ = ["PASSWORD", "cluster", "user"]

PASSWORD = "password123"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path_factory.mktemp("sdk"), secret=SECRET) as c:
        await c.start(nodes=2)
        yield c


@asynccontextmanager
async def user(cluster: Cluster, name: str, **kwargs: object) -> AsyncIterator[Client]:
    """A registered, connected client that is closed afterwards."""
    client = Client(cluster.route_url, name, PASSWORD, backoff_min=0.05, backoff_max=0.5, **kwargs)
    try:
        await client.register()
        await client.connect()
        yield client
    finally:
        await client.close()
