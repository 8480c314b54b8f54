"""``cim up``: a whole cluster on this machine -- NATS, Redis, the route and N nodes.

The launcher spawns processes (``python -m cim_route``, ``python -m cim_node``);
it never imports them. It keeps the cluster's secret and API key in the data
folder, so tokens and scripts survive a restart, waits until the route is ready
and lists every node, prints where everything listens, then watches the
children until SIGINT/SIGTERM, when it stops what it started (route and nodes
first, then Redis and NATS) and exits 0.

``LocalCluster`` is the reusable part (``cim bench`` starts one of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

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

__all__ = ["Child", "LocalCluster", "default_data_dir", "run_async", "run_up"]

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HOST = "127.0.0.1"


def default_data_dir() -> Path:
    """Where ``cim up`` keeps NATS and Redis data, the secret, the API key and logs."""
    import platformdirs  # noqa: PLC0415 - only the CLI needs it

    return Path(platformdirs.user_data_dir("cim"))


def _kept_secret(path: Path, nbytes: int) -> str:
    """The value stored in ``path`` (mode 0600), created once."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    os.chmod(path, 0o600)
    return value


@dataclass
class Child:
    """One cim process the launcher started."""

    name: str
    module: str
    port: int
    popen: subprocess.Popen
    log_path: Path
    reported: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class LocalCluster:
    """NATS + Redis (unless given by URL) + one route + ``nodes`` nodes, as child processes."""

    data_dir: Path
    nodes: int = 2
    route_port: int = 8080
    host: str = HOST
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    extra_env: dict[str, str] = field(default_factory=dict)
    """More ``CIM_*`` settings for every child (lower-case names without the prefix)."""
    services: list[Service] = field(default_factory=list)
    route: Child | None = None
    node_procs: list[Child] = field(default_factory=list)
    api_key: str = ""
    secret: str = ""

    @property
    def route_url(self) -> str:
        assert self.route is not None
        return f"http://{self.host}:{self.route.port}"

    @property
    def children(self) -> list[Child]:
        return [c for c in (self.route, *self.node_procs) if c is not None]

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def _settings(self) -> tuple[str, str]:
        """NATS and Redis URLs, the secret and the API key; starts the servers it must."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.secret = self.environ.get("CIM_SECRET") or _kept_secret(self.data_dir / "secret", 32)
        keys = [k.strip() for k in self.environ.get("CIM_API_KEYS", "").split(",") if k.strip()]
        self.api_key = keys[0] if keys else _kept_secret(self.data_dir / "api_key", 24)
        nats_url = self.environ.get("CIM_NATS_URL")
        if not nats_url:
            nats = start_nats(self.data_dir, 0, self.host, self.log_dir / "nats.log", detach=True)
            self.services.append(nats)
            nats_url = nats.url
        redis_url = self.environ.get("CIM_REDIS_URL")
        if not redis_url:
            redis = start_redis(
                self.data_dir, 0, self.host, self.log_dir / "redis.log", aof=True, detach=True
            )
            self.services.append(redis)
            redis_url = redis.url
        return nats_url, redis_url

    def _spawn(self, name: str, module: str, port: int, **cim_vars: Any) -> Child:
        log_path = self.log_dir / f"{name}.log"
        popen = spawn_module(module, child_env(**cim_vars), log_path, detach=True)
        return Child(name, module, port, popen, log_path)

    def start_processes(self) -> None:
        """Start servers, the route and the nodes (blocking; run it in a thread from async code)."""
        nats_url, redis_url = self._settings()
        common = {
            **self.extra_env,
            "nats_url": nats_url,
            "redis_url": redis_url,
            "secret": self.secret,
            "api_keys": self.environ.get("CIM_API_KEYS") or self.api_key,
        }
        port = self.route_port or free_port(self.host)
        self.route = self._spawn("route", "cim_route", port, route_host=self.host, route_port=port, **common)
        for i in range(1, self.nodes + 1):
            node_port = free_port(self.host)
            child = self._spawn(
                f"node-{i}",
                "cim_node",
                node_port,
                node_id=f"node-{i}",
                node_host=self.host,
                node_port=node_port,
                node_ws_port=free_port(self.host),
                route_url=self.route_url,  # the web chat's origin: its WebSockets may connect
                **common,
            )
            self.node_procs.append(child)
        for child in self.children:
            wait_for_port(self.host, child.port, timeout=READY_TIMEOUT_S, proc=child.popen)

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ``/readyz`` is 200 and ``GET /nodes`` lists every node; raise if a child dies."""
        wanted = {c.name for c in self.node_procs}
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                dead = [c for c in self.children if not c.alive]
                if dead:
                    names = ", ".join(f"{c.name} (exit {c.popen.returncode}, log {c.log_path})" for c in dead)
                    raise RuntimeError(f"exited while starting: {names}")
                if await self._is_ready(http, wanted):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the cluster was not ready after {timeout:.0f}s (logs in {self.log_dir})"
                    )
                await asyncio.sleep(0.1)

    async def _is_ready(self, http: httpx.AsyncClient, wanted: set[str]) -> bool:
        try:
            ready = await http.get(self.route_url + "/readyz")
            if ready.status_code != 200:
                return False
            nodes = await http.get(self.route_url + "/api/v1/nodes", headers={"X-API-Key": self.api_key})
        except httpx.TransportError:
            return False
        return nodes.status_code == 200 and wanted <= {n["id"] for n in nodes.json()}

    async def start(self) -> None:
        """Start everything and wait until it answers (stops what it started on failure)."""
        try:
            await asyncio.to_thread(self.start_processes)
            await self.wait_ready()
        except BaseException:
            await self.stop()
            raise

    def dead_children(self) -> list[Child]:
        """Children that exited and were not reported yet (each reported once)."""
        dead = [c for c in self.children if not c.alive and not c.reported]
        for c in dead:
            c.reported = True
        return dead

    def stop_processes(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the route and nodes, wait, SIGKILL the stragglers; then stop Redis and NATS."""
        for child in self.children:
            if child.alive:
                child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs: killing it", child.name, timeout)
                child.popen.kill()
                child.popen.wait(timeout)
        for service in reversed(self.services):
            service.stop(timeout)

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        await asyncio.to_thread(self.stop_processes, timeout)

    def banner(self) -> list[str]:
        """The lines ``cim up`` prints once ready (the contract's format)."""
        lines = [f"route: {self.route_url}", f"api key: {self.api_key}"]
        lines += [f"node {c.name}: {self.host}:{c.port} pid {c.pid}" for c in self.node_procs]
        lines.append("ready")
        return lines


async def _until(task: asyncio.Task[Any], stop: asyncio.Event) -> bool:
    """Wait for ``task`` or ``stop``; True if the task finished first."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
    return task.done()


async def _serve(cluster: LocalCluster, out: TextIO, err: TextIO) -> int:
    """Start, print the banner, watch the children until a signal; always stop everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # Spawning runs in a thread that cannot be interrupted: on a signal, let it
        # finish so that every process it started is known, then stop them all.
        spawning = asyncio.create_task(asyncio.to_thread(cluster.start_processes))
        if not await _until(spawning, stop):
            with contextlib.suppress(Exception):
                await spawning
            return 0
        spawning.result()
        ready = asyncio.create_task(cluster.wait_ready())
        if not await _until(ready, stop):
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ready
            return 0
        ready.result()
        for line in cluster.banner():
            print(line, file=out, flush=True)
        while not stop.is_set():
            for child in cluster.dead_children():
                print(
                    f"cim up: {child.name} (pid {child.pid}) exited with {child.popen.returncode}; "
                    f"see {child.log_path}",
                    file=err,
                    flush=True,
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()
        return 0
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"cim up: {exc}", file=err, flush=True)
        return 1
    finally:
        await cluster.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_up(nodes: int, route_port: int, data_dir: Path | None) -> int:
    """The ``cim up`` command; returns the exit code."""
    if nodes < 1:
        print("cim up: --nodes must be at least 1", file=sys.stderr)
        return 2
    cluster = LocalCluster(data_dir or default_data_dir(), nodes=nodes, route_port=route_port)
    return run_async(_serve(cluster, sys.stdout, sys.stderr))


def run_async(coro: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
