"""``cim up``: a whole cluster on this machine -- NATS, Redis, the route and N nodes.

The launcher spawns processes (``python -m cim_route``, ``python -m cim_node``);
it never imports them. It keeps the cluster's secret and API key in the data
folder, so tokens and scripts survive a restart, waits until the route is ready
and lists every node, prints where everything listens, then supervises the
children (``supervisor``: one that exits is started again) until SIGINT/SIGTERM,
when it stops what it started (route and nodes first, then Redis and NATS) and
exits 0.

``LocalCluster`` is the reusable part: ``cim bench`` starts one of its own and
the test harness (``tests/harness.py``) builds its clusters on it, so every
test cluster is authenticated the way ``cim up`` is: NATS with a user for the
route and one per node (``nats_auth``; a node added later gets its user by a
configuration reload before it starts), Redis with cim's ACL user
(``services``), both credentials in the children's URLs. The data folder is
private (``data_folder``); with ``tls`` the route, the nodes and NATS use the
certificates of ``tls_files`` and every child checks the others against its CA.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from cim_cli.ops.data_folder import (
    API_KEY_FILE,
    SECRET_FILE,
    LooseModeError,
    default_data_dir,
    kept_secret,
    private_dir,
    private_tree,
)
from cim_cli.ops.ha import NatsCluster, RedisClusterServers, ha_ports
from cim_cli.ops.nats_auth import ROUTE, NatsAuth, node_user, route_user
from cim_cli.ops.services import (
    Service,
    child_env,
    cim_service,
    free_port,
    nats_service,
    redis_service,
    write_nats_config,
)
from cim_cli.ops.supervisor import Supervisor
from cim_cli.ops.tls_files import TlsFiles, ensure_tls_files
from shared.limits import raise_open_files
from shared.links import client_tls, connect_once
from shared.settings import api_keys
from shared.tasks import first_done

__all__ = ["LocalCluster", "run_async", "run_up"]

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
RELOAD_TIMEOUT_S = 10.0
HOST = "127.0.0.1"
ROUTE_WORKERS = 2
"""``cim up``'s route processes. Measured on 2 cores (64 keep-alive senders, alternating runs):
two workers took 1.3-1.5 times the sends/s of one in 3 of 4 pairs, at about the same CPU
per send: one worker tops out at one core, two use whatever the rest of the cluster leaves."""


@dataclass
class LocalCluster:
    """NATS + Redis (unless given by URL) + routes + nodes, as child processes.

    ``start`` brings up NATS, Redis, one route and ``nodes`` nodes; ``add_route`` and
    ``add_node`` start more; ``stop`` ends every process it started.
    """

    data_dir: Path
    nodes: int = 2
    route_port: int = 8080
    """Port of the first route (0 = any free port); the others take free ports."""
    host: str = HOST
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    """Where ``CIM_SECRET``, ``CIM_API_KEYS``, ``CIM_NATS_URL`` and ``CIM_REDIS_URL`` are read."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More ``CIM_*`` settings for every child (lower-case names without the prefix)."""
    route_workers: int = 1
    """Route processes sharing the route's port (``CIM_ROUTE_WORKERS``)."""
    tls: bool = False
    """TLS for the route, the nodes and NATS, with certificates of a CA in the data folder."""
    ha: bool = False
    """A 3-server NATS cluster and a Redis Cluster (3 masters, a replica each) instead of one
    server each (``ha``); either is still left out when its ``CIM_*_URL`` is given."""
    nats_monitor: bool = False
    """With ``ha``: a monitoring port on each NATS server (tests see who is connected where)."""
    secret: str = ""
    """Given, else ``CIM_SECRET``, else the one kept in the data folder."""
    api_key: str = ""
    """The key it prints and uses itself: given, else the first of ``CIM_API_KEYS``, else the one
    kept in the data folder. The route accepts it and every key of ``CIM_API_KEYS``."""
    nats: Service | None = None
    redis: Service | None = None
    routes: list[Service] = field(default_factory=list)
    node_procs: list[Service] = field(default_factory=list)
    nats_url: str = ""
    """The route's NATS URL (``CIM_NATS_URL`` when given: then every child's)."""
    redis_url: str = ""
    nats_auth: NatsAuth | None = None
    """The users of the NATS server(s) it started (None: ``CIM_NATS_URL`` names one)."""
    nats_cluster: NatsCluster | None = None
    redis_cluster: RedisClusterServers | None = None
    tls_files: TlsFiles | None = None

    @property
    def route(self) -> Service:
        return self.routes[0]

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def route_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.route.port}"

    @property
    def ca(self) -> str:
        """The CA file clients check this cluster's certificates against ("" without TLS)."""
        return str(self.tls_files.ca) if self.tls_files else ""

    @property
    def services(self) -> list[Service]:
        """The NATS and Redis servers it started."""
        members = [*(self.nats_cluster.services if self.nats_cluster else ())]
        members += self.redis_cluster.services if self.redis_cluster else ()
        return [s for s in (self.nats, self.redis) if s is not None] + members

    @property
    def children(self) -> list[Service]:
        """The cim processes: routes and nodes."""
        return [*self.routes, *self.node_procs]

    @property
    def processes(self) -> list[Service]:
        """Everything it started."""
        return [*self.services, *self.children]

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def _keep_settings(self) -> None:
        """The private data folder, the secret, the API key and the TLS files (refuses a secret
        or key file others may read: ``LooseModeError``; everything else is made private)."""
        private_dir(self.data_dir)
        self.secret = (
            self.secret or self.environ.get("CIM_SECRET") or kept_secret(self.data_dir / SECRET_FILE, 32)
        )
        keys = api_keys(self.environ)
        self.api_key = self.api_key or (keys[0] if keys else kept_secret(self.data_dir / API_KEY_FILE, 24))
        if self.tls:
            self.tls_files = ensure_tls_files(self.data_dir)
        private_tree(self.data_dir)
        private_dir(self.log_dir)

    def _planned_node_ids(self) -> list[str]:
        return [f"node-{i + 1}" for i in range(self.nodes)]

    async def start_servers(self) -> None:
        """Start NATS and Redis, unless ``CIM_NATS_URL`` / ``CIM_REDIS_URL`` name running ones."""
        self._keep_settings()
        self.nats_url = self.environ.get("CIM_NATS_URL", "")
        if not self.nats_url:
            self.nats_auth = NatsAuth()
            for user in (route_user(), *map(node_user, self._planned_node_ids())):
                self.nats_auth.add(user)
        self.redis_url = self.environ.get("CIM_REDIS_URL", "")
        if self.ha:
            await self._start_ha_servers()
        else:
            await self._start_single_servers()

    async def _start_single_servers(self) -> None:
        if self.nats_auth is not None:
            self.nats = nats_service(
                self.data_dir,
                0,
                self.host,
                self.log_dir / "nats.log",
                detach=True,
                auth=self.nats_auth,
                tls=self.tls_files.pair if self.tls_files else None,
            )
            self.nats_url = self.nats_auth.url(ROUTE, self.host, self.nats.port, self.tls)
        if not self.redis_url:
            self.redis = redis_service(
                self.data_dir, 0, self.host, self.log_dir / "redis.log", aof=True, detach=True
            )
            self.redis_url = self.redis.url
        for service in self.services:
            service.spawn()
        await _listening(*self.services)

    async def _start_ha_servers(self) -> None:
        """The NATS cluster and the Redis Cluster (``ha``), each formed and healthy."""
        ports = ha_ports(self.data_dir, self.host)
        tls = self.tls_files.pair if self.tls_files else None
        if self.nats_auth is not None:
            self.nats_cluster = NatsCluster(
                self.data_dir,
                self.nats_auth,
                self.host,
                ports["nats"],
                self.log_dir,
                tls,
                detach=True,
                monitor=self.nats_monitor,
            )
            self.nats_url = self.nats_cluster.url(ROUTE)
            self.extra_env.setdefault("nats_kv_replicas", "3")
        if not self.redis_url:
            self.redis_cluster = RedisClusterServers(
                self.data_dir, self.host, ports["redis"], self.log_dir, detach=True
            )
            self.redis_url = self.redis_cluster.url()
        for service in self.services:
            service.spawn()
        await _listening(*self.services)
        if self.redis_cluster:
            await self.redis_cluster.form(READY_TIMEOUT_S)
        if self.nats_cluster:
            await self.nats_cluster.wait_jetstream(ROUTE, self.ca, READY_TIMEOUT_S)

    def _common_env(self) -> dict[str, Any]:
        tls = {}
        if self.tls_files:
            tls = {"tls_cert": self.tls_files.cert, "tls_key": self.tls_files.key, "tls_ca": self.ca}
        return {
            **self.extra_env,
            **tls,
            "nats_url": self.nats_url,
            "redis_url": self.redis_url,
            "secret": self.secret,
            "api_keys": ",".join(dict.fromkeys((self.api_key, *api_keys(self.environ)))),
        }

    def _node_nats_url(self, node_id: str) -> str:
        """The NATS URL of node ``node_id``: its own user's on our server(s), else ``CIM_NATS_URL``."""
        if self.nats_cluster is not None:
            return self.nats_cluster.url(node_id)
        if self.nats_auth is None or self.nats is None:
            return self.nats_url
        return self.nats_auth.url(node_id, self.host, self.nats.port, self.tls)

    async def _add_nats_user(self, node_id: str) -> None:
        """Give node ``node_id`` a NATS user (config rewritten, server reloaded) unless it has one."""
        if self.nats_auth is None or node_id in self.nats_auth.users:
            return
        self.nats_auth.add(node_user(node_id))
        if self.nats_cluster is not None:
            self.nats_cluster.write_configs()
            self.nats_cluster.reload()
            servers = self.nats_cluster.server_urls(node_id)
            for service, server in zip(self.nats_cluster.services, servers, strict=True):
                if service.alive:  # one that is down reads the new user when it starts again
                    await _until_accepted(server, self.ca)
            return
        if self.nats is None:
            return
        write_nats_config(
            self.data_dir / "nats.conf",
            self.nats_auth,
            self.host,
            self.nats.port,
            self.data_dir / "nats",
            self.tls_files.pair if self.tls_files else None,
        )
        self.nats.signal(signal.SIGHUP)
        await _until_accepted(self._node_nats_url(node_id), self.ca)

    def _spawn(self, name: str, module: str, port: int, **cim_vars: Any) -> Service:
        env = child_env(**{**self._common_env(), **cim_vars})
        service = cim_service(name, module, self.host, port, env, self.log_dir / f"{name}.log", detach=True)
        service.spawn()
        return service

    def _spawn_route(self, **env: Any) -> Service:
        first = not self.routes
        port = (self.route_port if first else 0) or free_port(self.host)
        name = "route" if first else f"route-{len(self.routes) + 1}"
        route = self._spawn(
            name,
            "cim_route",
            port,
            **env,
            route_host=self.host,
            route_port=port,
            route_workers=self.route_workers,
        )
        self.routes.append(route)
        return route

    def _spawn_node(self, node_id: str | None = None, **env: Any) -> Service:
        node_id = node_id or f"node-{len(self.node_procs) + 1}"
        port = free_port(self.host)
        web = {"node_ws_port": free_port(self.host), "route_url": self.route_url if self.routes else ""}
        node = self._spawn(
            node_id,
            "cim_node",
            port,
            **{**web, **env},
            node_id=node_id,
            node_host=self.host,
            node_port=port,
            nats_url=self._node_nats_url(node_id),
        )
        self.node_procs.append(node)
        return node

    async def add_route(self, **env: Any) -> Service:
        """Start a route (more ``CIM_*`` settings in ``env``) and wait until it listens."""
        route = self._spawn_route(**env)
        await _listening(route)
        return route

    async def add_node(self, node_id: str | None = None, **env: Any) -> Service:
        """Start a node (default id ``node-N``) and wait until it listens."""
        node_id = node_id or f"node-{len(self.node_procs) + 1}"
        await self._add_nats_user(node_id)
        node = self._spawn_node(node_id, **env)
        await _listening(node)
        return node

    async def start_processes(self) -> None:
        """Start the servers, one route and the nodes; wait until each listens."""
        await self.start_servers()
        await _listening(self._spawn_route(), *(self._spawn_node() for _ in range(self.nodes)))

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ``/readyz`` is 200 and ``GET /nodes`` lists every node; raise if a child dies."""
        wanted = {c.name for c in self.node_procs}
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5.0, verify=client_tls(self.ca)) as http:
            while True:
                dead = [c for c in self.children if not c.alive]
                if dead:
                    names = ", ".join(f"{c.name} (exit {c.returncode}, log {c.log_path})" for c in dead)
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
            await self.start_processes()
            await self.wait_ready()
        except BaseException:
            await self.stop()
            raise

    def stop_processes(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the routes and nodes, wait, SIGKILL the stragglers; then stop Redis and NATS."""
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            child.reap(deadline - time.monotonic())
        for service in reversed(self.services):
            service.stop(timeout)

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        await asyncio.to_thread(self.stop_processes, timeout)

    def banner(self) -> list[str]:
        """The lines ``cim up`` prints once ready (the contract's format)."""
        lines = [f"route: {self.route_url}", f"api key: {self.api_key}"]
        if self.tls_files:
            lines.append(f"ca: {self.ca}")
        if self.nats_cluster:
            lines.append(f"nats: {self.nats_cluster.addresses}")
        if self.redis_cluster:
            lines.append(f"redis: {self.redis_cluster.addresses}")
        lines += [f"node {c.name}: {self.host}:{c.port} pid {c.pid}" for c in self.node_procs]
        lines.append("ready")
        return lines


async def _listening(*services: Service) -> None:
    """Wait until every (spawned) service listens; raise if one exits first."""
    await asyncio.gather(*(asyncio.to_thread(s.wait_listening, READY_TIMEOUT_S) for s in services))


async def _until_accepted(url: str, ca: str, timeout: float = RELOAD_TIMEOUT_S) -> None:
    """Until NATS accepts ``url``'s user (a reload is applied a moment after SIGHUP)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            nc = await connect_once(url, ca=ca)
        except Exception:  # nats-py raises several unrelated types for a refused user
            if time.monotonic() > deadline:
                raise RuntimeError(f"NATS did not take the new user after {timeout:.0f}s") from None
            await asyncio.sleep(0.05)
            continue
        await nc.close()
        return


async def _unless_stopped(coro: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``coro`` to its end (True; its exception propagates), unless ``stop`` is set first:
    then it is cancelled and awaited (False)."""
    task = asyncio.ensure_future(coro)
    if await first_done(task, stop.wait()) is not task:
        return False
    task.result()
    return True


async def _serve(cluster: LocalCluster, out: TextIO, err: TextIO) -> int:
    """Start, print the banner, supervise the children until a signal; always stop everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if not await _unless_stopped(cluster.start(), stop):
            return 0
        for line in cluster.banner():
            print(line, file=out, flush=True)
        async with Supervisor(cluster.processes, err):
            await stop.wait()
        return 0
    except LooseModeError as exc:
        print(f"cim up: refused: {exc}", file=err, flush=True)
        return 2
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"cim up: {exc}", file=err, flush=True)
        return 1
    finally:
        await cluster.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_up(
    nodes: int,
    route_port: int,
    data_dir: Path | None,
    route_workers: int | None = None,
    tls: bool = False,
    ha: bool = False,
) -> int:
    """The ``cim up`` command; returns the exit code."""
    route_workers = ROUTE_WORKERS if route_workers is None else route_workers
    problem = _usage_problem(nodes, route_workers, ha, os.environ)
    if problem:
        print(f"cim up: {problem}", file=sys.stderr)
        return 2
    raise_open_files()  # the route, nodes, NATS and Redis inherit it
    cluster = LocalCluster(
        data_dir or default_data_dir(),
        nodes=nodes,
        route_port=route_port,
        route_workers=route_workers,
        tls=tls,
        ha=ha,
    )
    return run_async(_serve(cluster, sys.stdout, sys.stderr))


def _usage_problem(nodes: int, route_workers: int, ha: bool, environ: Mapping[str, str]) -> str:
    """Why these ``cim up`` arguments cannot work ("" when they can)."""
    if nodes < 1 or route_workers < 1:
        return "--nodes and --route-workers must be at least 1"
    given = [name for name in ("CIM_NATS_URL", "CIM_REDIS_URL") if environ.get(name)]
    if ha and given:
        return f"--ha starts its own NATS and Redis clusters: unset {' and '.join(given)}"
    return ""


def run_async(coro: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
