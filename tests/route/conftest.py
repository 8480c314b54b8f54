"""Fixtures for route tests: the app in-process (lifespan run, httpx over ASGI) against the
session's real NATS and Redis, a key prefix of its own and a ``MemoryRegistry`` with one node."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as Nats
from nats.aio.subscription import Subscription

from cim_cli.ops.services import Service, child_env, wait_for_port
from cim_route import create_app
from cim_route.context import Context
from shared import bus, sessions
from shared.registry import MemoryRegistry, NodeInfo, NodeRegistry
from shared.settings import RateLimit, RouteSettings
from tests.conftest import SECRET
from tests.harness import API_KEY, eventually

PASSWORD = "password123"


def node_id() -> str:
    return f"n-{secrets.token_hex(4)}"


@dataclass
class RouteUnderTest:
    """One in-process route: ``http`` talks to ``/api/v1``, ``root`` to ``/``."""

    app: Any
    http: httpx.AsyncClient
    root: httpx.AsyncClient
    registry: NodeRegistry
    node: str | None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def ctx(self) -> Context:
        return self.app.state.context

    @property
    def admin(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def user(self, name: str) -> dict[str, str]:
        """Register and log in ``name``; return its auth header."""
        resp = await self.http.post("/users", json={"username": name, "password": PASSWORD})
        assert resp.status_code == 201, resp.text
        resp = await self.http.post("/login", json={"username": name, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        self.tokens[name] = resp.json()["token"]
        return self.auth(name)

    async def connect(
        self, user: str, node: str | None = None, conn: str = "c1", device: str = "default"
    ) -> None:
        """Make ``user``'s ``device`` online on ``node`` as a node would at login."""
        ctx = self.ctx
        await sessions.claim(ctx.redis, ctx.scripts, ctx.keys, user, device, node or self.node, conn)

    async def add_node(self, node: str, **fields: Any) -> NodeInfo:
        info = NodeInfo(id=node, host="127.0.0.1", port=9000, **fields)
        await self.registry.announce(info)

        async def seen() -> bool:
            return self.ctx.view.get(node) == info

        await eventually(seen, timeout=5, what=f"{node} in view")
        return info


MakeRoute = Callable[..., Awaitable[RouteUnderTest]]


@pytest.fixture
async def make_route(nats_service: Service, redis_service: Service, prefix: str) -> AsyncIterator[MakeRoute]:
    """Factory of routes sharing this test's prefix (two replicas share Redis state)."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(
            registry: NodeRegistry | None = None, with_node: bool = True, **overrides: Any
        ) -> RouteUnderTest:
            values: dict[str, Any] = {
                "nats_url": nats_service.url,
                "redis_url": redis_service.url,
                "redis_prefix": prefix,
                "secret": SECRET,
                "api_keys": (API_KEY,),
                "scrypt_n": 1024,
                "scheduler_poll_ms": 50,
                "auth_rate": RateLimit(0, 0),  # tests register many users from one address
                **overrides,
            }
            settings = RouteSettings(**values)
            settings.validate()
            registry = registry if registry is not None else MemoryRegistry()
            app = create_app(settings, registry)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://route/api/v1")
            )
            root = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://route")
            )
            route = RouteUnderTest(app, http, root, registry, node=None)
            if with_node:
                route.node = node_id()
                await route.add_node(route.node)
            return route

        yield make


@pytest.fixture
async def route(make_route: MakeRoute) -> RouteUnderTest:
    return await make_route()


async def next_payload(sub: Subscription, timeout: float = 5.0) -> dict[str, Any]:
    msg = await sub.next_msg(timeout=timeout)
    return bus.decode(msg.data)


async def settle(route: RouteUnderTest, nc: Nats) -> None:
    """Round-trip the route's NATS connection, then the test's, so that whatever the route
    published so far is in the test's subscriptions."""
    await route.ctx.nats.flush(timeout=2)
    await nc.flush(timeout=2)


def route_env(nats: Service, redis: Service, port: int, **settings: Any) -> dict[str, str]:
    """The environment of a route process on the suite's NATS and Redis, listening on ``port``,
    with more ``CIM_*`` ``settings``."""
    return child_env(nats_url=nats.url, redis_url=redis.url, secret=SECRET, route_port=port, **settings)


def start_route_process(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """``python -m cim_route`` with ``env`` (its output in ``log``), once it listens on ``port``."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cim_route"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port("127.0.0.1", port, 20.0, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
