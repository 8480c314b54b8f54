"""A whole cim cluster of real processes for system tests.

Each ``Cluster`` has its own nats-server and redis-server on free ports, a
route and nodes started as ``python -m cim_route`` / ``python -m cim_node``,
and stops every process it started on exit, whatever happened.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from cim_cli.ops.services import (
    Service,
    child_env,
    free_port,
    spawn_module,
    start_nats,
    start_redis,
    wait_for_port,
)

API_KEY = "test-api-key-0123456789"
SECRET = "test-secret-" + "x" * 20


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


@dataclass
class Proc:
    """One cim process of the cluster."""

    name: str
    popen: subprocess.Popen
    port: int
    log: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            self.popen.send_signal(sig)

    async def wait(self, timeout: float = 15.0) -> int:
        return await asyncio.to_thread(self.popen.wait, timeout)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.wait()

    async def stop(self, timeout: float = 15.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            await self.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Cluster:
    """NATS + Redis + routes + nodes; ``async with`` guarantees they all stop."""

    def __init__(self, tmp: Path, secret: str, **env: Any) -> None:
        self.tmp = tmp
        self.secret = secret
        self.env = {"registry_refresh_s": "1", "log_level": "info", **{k: str(v) for k, v in env.items()}}
        self.nats: Service | None = None
        self.redis: Service | None = None
        self.routes: list[Proc] = []
        self.nodes: dict[str, Proc] = {}
        self._node_counter = 0
        self.http = httpx.AsyncClient(timeout=10.0)

    async def __aenter__(self) -> Self:
        self.nats = await asyncio.to_thread(start_nats, self.tmp, 0, "127.0.0.1", self.tmp / "nats.log")
        self.redis = await asyncio.to_thread(start_redis, self.tmp, 0, "127.0.0.1", self.tmp / "redis.log")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        procs = [*self.routes, *self.nodes.values()]
        await asyncio.gather(*(self._stop_quietly(p) for p in procs))
        for service in (self.nats, self.redis):
            if service is not None:
                await service.astop()
        await self.http.aclose()
        if exc_info[0] is not None:
            for p in procs:
                sys.stderr.write(f"----- {p.name} log -----\n{p.output()[-4000:]}\n")

    @staticmethod
    async def _stop_quietly(proc: Proc) -> None:
        try:
            await proc.stop(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    # ----- processes -----------------------------------------------------------

    def _base_env(self, **extra: Any) -> dict[str, str]:
        assert self.nats and self.redis
        values = {
            **self.env,
            "nats_url": self.nats.url,
            "redis_url": self.redis.url,
            "secret": self.secret,
            "api_keys": API_KEY,
            **{k: str(v) for k, v in extra.items()},
        }
        return child_env(**values)

    def _spawn(self, name: str, module: str, port: int, env: dict[str, str]) -> Proc:
        log = self.tmp / f"{name}.log"
        return Proc(name, spawn_module(module, env, log), port, log)

    async def add_route(self, **env: Any) -> Proc:
        port = free_port()
        proc = self._spawn(
            f"route-{len(self.routes) + 1}", "cim_route", port, self._base_env(route_port=port, **env)
        )
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 20.0, proc.popen)
        self.routes.append(proc)
        return proc

    async def add_node(self, node_id: str | None = None, wait: bool = True, **env: Any) -> Proc:
        self._node_counter += 1
        node_id = node_id or f"node-{self._node_counter}"
        port = free_port()
        settings = {"node_id": node_id, "node_port": port, "metrics_port": 0, "node_ws_port": free_port()}
        if self.routes:
            settings["route_url"] = self.route_url  # the web chat's origin
        proc = self._spawn(node_id, "cim_node", port, self._base_env(**{**settings, **env}))
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 20.0, proc.popen)
        self.nodes[node_id] = proc
        if wait and self.routes:
            await self.wait_nodes(lambda ids: node_id in ids, what=f"{node_id} registered")
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
        return f"http://127.0.0.1:{self.routes[0].port}"

    def api(self, path: str, route: int = 0) -> str:
        return f"http://127.0.0.1:{self.routes[route].port}/api/v1{path}"

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
        port = self.nats.port
        await self.nats.astop()
        self.nats = await asyncio.to_thread(start_nats, self.tmp, port, "127.0.0.1", self.tmp / "nats.log")

    async def restart_redis(self) -> None:
        assert self.redis
        port = self.redis.port
        await self.redis.astop()
        self.redis = await asyncio.to_thread(start_redis, self.tmp, port, "127.0.0.1", self.tmp / "redis.log")
