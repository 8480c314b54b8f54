"""A whole cim cluster of real processes for system tests, and the helpers every test
directory uses (``eventually``, ``envelope``).

Each ``Cluster`` has its own nats-server and redis-server on free ports, a
route and nodes started as ``python -m cim_route`` / ``python -m cim_node``,
and stops every process it started on exit, whatever happened. The processes
are started by ``cim up``'s own ``LocalCluster``; ``Cluster`` adds what tests
need (several routes, nodes one by one, restarts of NATS and Redis, HTTP
helpers).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from cim_cli.ops.launcher import LocalCluster
from cim_cli.ops.services import Service
from cim_client import Client

API_KEY = "test-api-key-0123456789"
SECRET = "test-secret-" + "x" * 20


async def first_message(sender: Client, recipient: Client, body: str) -> None:
    """Register and connect both, then one message from ``sender``: ``recipient`` gets it whole."""
    for client in (sender, recipient):
        await client.register()
        await client.connect()
    sent = await sender.send(recipient.username, body)
    got = await recipient.next_message(10)
    assert (got.id, got.sender, got.body) == (sent.id, sender.username, body)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last={last!r}")


def envelope(resp: httpx.Response, status: int, code: str) -> None:
    """``resp`` is the route's error envelope: ``status``, ``{error: code, detail: "..."}``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


@dataclass
class Proc:
    """One cim process of the cluster, for tests: awaitable kill/wait, its log."""

    service: Service

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def alive(self) -> bool:
        return self.service.alive

    async def wait(self, timeout: float = 15.0) -> int:
        assert self.service.proc is not None
        return await asyncio.to_thread(self.service.proc.wait, timeout)

    async def kill(self) -> None:
        await asyncio.to_thread(self.service.kill)

    def output(self) -> str:
        log = self.service.log_path
        return log.read_text(errors="replace") if log and log.exists() else ""


class Cluster:
    """NATS + Redis + routes + nodes of a ``LocalCluster`` (the code of ``cim up``) in ``tmp``;
    ``async with`` guarantees they all stop. ``env``: ``CIM_*`` settings of every process;
    ``tls``: as ``cim up --tls`` (``http`` then trusts the cluster's CA, ``local.ca``); ``ha``:
    as ``cim up --ha`` (NATS and Redis clusters; ``tests.ha_rig`` has their faults)."""

    def __init__(self, tmp: Path, secret: str, tls: bool = False, ha: bool = False, **env: Any) -> None:
        self.local = LocalCluster(
            tmp,
            nodes=0,
            route_port=0,
            environ={},
            extra_env={
                "registry_refresh_s": "1",
                "log_level": "info",
                "auth_rate": "0",  # tests register many users from one address
                **{k: str(v) for k, v in env.items()},
            },
            secret=secret,
            api_key=API_KEY,
            tls=tls,
            ha=ha,
            nats_monitor=ha,
        )
        self.routes: list[Proc] = []
        self.nodes: dict[str, Proc] = {}
        self.http = httpx.AsyncClient(timeout=10.0)

    @property
    def nats(self) -> Service | None:
        return self.local.nats

    @property
    def redis(self) -> Service | None:
        return self.local.redis

    async def __aenter__(self) -> Self:
        try:
            await self.local.start_servers()
            if self.local.tls:
                await self.http.aclose()
                verify = ssl.create_default_context(cafile=self.local.ca)
                self.http = httpx.AsyncClient(timeout=10.0, verify=verify)
        except BaseException:
            await self.local.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Its idle keep-alive connections first: over TLS the route's stop waits (up to its
        # graceful timeout) for a client to answer the TLS close, and an idle pool does not.
        await self.http.aclose()
        await self.local.stop(timeout=10)
        if exc_info[0] is not None:
            for p in [*self.routes, *self.nodes.values()]:
                sys.stderr.write(f"----- {p.name} log -----\n{p.output()[-4000:]}\n")

    # ----- processes -----------------------------------------------------------

    async def add_route(self, **env: Any) -> Proc:
        proc = Proc(await self.local.add_route(**env))
        self.routes.append(proc)
        return proc

    async def add_node(self, node_id: str | None = None, wait: bool = True, **env: Any) -> Proc:
        proc = Proc(await self.local.add_node(node_id, **{"metrics_port": 0, **env}))
        self.nodes[proc.name] = proc
        if wait and self.routes:
            await self.wait_nodes(lambda ids: proc.name in ids, what=f"{proc.name} registered")
        return proc

    async def start(
        self, nodes: int = 2, routes: int = 1, node_env: dict | None = None, **route_env: Any
    ) -> None:
        for _ in range(routes):
            await self.add_route(**route_env)
        for _ in range(nodes):
            await self.add_node(**(node_env or {}))

    # ----- HTTP helpers ---------------------------------------------------------

    @property
    def route_url(self) -> str:
        return f"{self.local.scheme}://127.0.0.1:{self.routes[0].port}"

    def api(self, path: str, route: int = 0) -> str:
        return f"{self.local.scheme}://127.0.0.1:{self.routes[route].port}/api/v1{path}"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}

    async def node_ids(self, route: int = 0) -> set[str]:
        resp = await self.http.get(self.api("/nodes", route), headers=self.admin_headers)
        resp.raise_for_status()
        return {n["id"] for n in resp.json()}

    async def wait_nodes(
        self, predicate: Callable[[set[str]], bool], timeout: float = 15.0, what: str = ""
    ) -> set[str]:
        async def check() -> set[str] | None:
            ids = await self.node_ids()
            return ids if predicate(ids) else None

        return await eventually(check, timeout=timeout, what=what or "node set")

    async def create_user(self, username: str, password: str = "password123") -> None:
        resp = await self.http.post(self.api("/users"), json={"username": username, "password": password})
        assert resp.status_code in (201, 409), resp.text

    async def register(self, username: str, password: str = "password123") -> dict:
        """Create the user and log in; returns the login answer (token, node)."""
        await self.create_user(username, password)
        resp = await self.http.post(self.api("/login"), json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def restart_nats(self) -> None:
        """Stop nats-server and start it again on the same port and store."""
        assert self.nats
        await self.nats.astop()
        await self.nats.astart()

    async def restart_redis(self) -> None:
        """Stop redis-server (if it still runs) and start it again on the same port and data."""
        assert self.redis
        await self.redis.astop()
        await self.redis.astart()
