"""What a scenario measures: cim (a cluster it starts, or ``--route``) or one of the two baselines.

A target starts and stops its processes (``async with``), names them for the
CPU figures, makes users (cim: ``POST /users`` + ``POST /login`` -> token and
node; a baseline: a name that is its own token, on the relay) and builds the
bytes of one send. Everything it starts lives in a temporary folder and is
stopped on exit.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cim_cli.bench.rawhttp import HttpConnection, HttpError, HttpPool, parse_url
from cim_cli.bench.report import GENERATOR
from cim_cli.ops.launcher import ROUTE_WORKERS, LocalCluster
from cim_cli.ops.services import Service, free_port, spawn_module, start_nats, start_redis, wait_for_port

__all__ = ["BASELINES", "Baseline", "CimTarget", "SendPlan", "User"]

PASSWORD = "bench-password"
SETUP_PARALLEL = 16
API = "/api/v1"
BASELINES = ("bare", "ideal")
_STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class User:
    """A receiver: its name, the token it logs in with, and where it connects."""

    name: str
    token: str
    host: str
    port: int
    node: str
    tls: str | None = None
    """None: its node speaks plain TCP; else the CA file its TLS is checked against."""


@dataclass(frozen=True, slots=True)
class SendPlan:
    """How to send one message to a target (picklable, for worker processes)."""

    host: str
    port: int
    tls: str | None
    """As ``HttpConnection``'s: None for plain HTTP, else the CA file (picklable, not a context)."""
    path: str
    bearer: bool
    """Whether the sender's token goes in ``Authorization`` (cim) or nothing does (baselines)."""

    def request(self, conn: HttpConnection, sender: User, to: str, body: str) -> bytes:
        """The bytes of ``POST path {to, body}`` (names and bench bodies need no JSON escaping)."""
        headers = {"Authorization": f"Bearer {sender.token}"} if self.bearer else None
        return conn.build("POST", self.path, f'{{"to":"{to}","body":"{body}"}}'.encode(), headers)


class CimTarget:
    """cim: a ``LocalCluster`` of its own (temporary folder, route port 0), or ``route_url``."""

    name = "cim"

    def __init__(
        self,
        *,
        nodes: int = 2,
        route_url: str | None = None,
        api_key: str = "",
        env: dict[str, str] | None = None,
        route_workers: int | None = None,
        tls: bool = False,
        ha: bool = False,
        ca: str = "",
    ) -> None:
        self.nodes = nodes
        self.route_workers = ROUTE_WORKERS if route_workers is None else route_workers
        self.tls = tls
        """TLS on every link of the cluster it starts (``cim up --tls``)."""
        self.ha = ha
        """NATS and Redis clusters instead of single servers (``cim up --ha``)."""
        self.ca = ca
        """The CA an ``https://`` route and TLS nodes are checked against ("": the system store)."""
        self.route_url = route_url
        self.api_key = api_key
        limits_off = {"rate_limit": "0", "auth_rate": "0"}
        self.env = {**limits_off, "log_level": "warning", "scrypt_n": "2", **(env or {})}
        self.cluster: LocalCluster | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.pool: HttpPool | None = None

    @property
    def http(self) -> tuple[str, int, str | None]:
        assert self.route_url is not None
        return parse_url(self.route_url, self.ca)

    async def __aenter__(self) -> CimTarget:
        if self.route_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cim-bench-")
            self.cluster = LocalCluster(
                Path(self._tmp.name),
                nodes=self.nodes,
                route_port=0,
                environ={},
                extra_env=self.env,
                route_workers=self.route_workers,
                tls=self.tls,
                ha=self.ha,
            )
            try:
                await self.cluster.start()  # stops what it started if it fails
            except BaseException:
                self._tmp.cleanup()
                raise
            self.route_url, self.api_key = self.cluster.route_url, self.cluster.api_key
            self.ca = self.cluster.ca
        self.pool = HttpPool(*self.http, SETUP_PARALLEL)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.cluster is not None:
            await self.cluster.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def processes(self) -> dict[str, int]:
        """The processes whose CPU is reported (only those of a cluster it started)."""
        procs = {GENERATOR: os.getpid()}
        if self.cluster is not None:
            for service in self.cluster.services:
                procs[f"{service.name}-server"] = service.proc.pid
            procs.update({child.name: child.pid for child in self.cluster.children})
        return procs

    def node_pid(self, node: str) -> int:
        assert self.cluster is not None, "needs a cluster of its own"
        return next(c.pid for c in self.cluster.node_procs if c.name == node)

    async def login(self, name: str) -> tuple[str, dict[str, Any]]:
        """(token, node) of a fresh login."""
        assert self.pool is not None
        status, answer = await self.pool.call(
            "POST", API + "/login", {"username": name, "password": PASSWORD}
        )
        if status != 200:
            raise HttpError(f"POST /login {name}: {status} {answer}")
        return answer["token"], answer["node"]

    async def users(self, names: list[str]) -> list[User]:
        """Register and log in every name (fresh names per run)."""

        async def one(name: str) -> User:
            assert self.pool is not None
            status, answer = await self.pool.call(
                "POST", API + "/users", {"username": name, "password": PASSWORD}
            )
            if status != 201:
                raise HttpError(f"POST /users {name}: {status} {answer}")
            token, node = await self.login(name)
            tls = self.ca if node.get("tls") else None
            return User(name, token, node["host"], node["port"], node["id"], tls)

        return await asyncio.gather(*(one(n) for n in names))

    @property
    def plan(self) -> SendPlan:
        return SendPlan(*self.http, API + "/messages", bearer=True)


class Baseline:
    """``bare`` (FastAPI -> NATS, ``baseline.py``) or ``ideal`` (one Redis pipeline + one publish,
    ``ideal.py``), each with the relay as receiver side, on a NATS (and Redis) of its own."""

    def __init__(self, kind: str) -> None:
        if kind not in BASELINES:
            raise ValueError(f"unknown baseline {kind!r}")
        self.name = kind
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._services: list[Service] = []
        self._procs: dict[str, subprocess.Popen] = {}
        self._port = 0
        self._relay_port = 0

    @property
    def http(self) -> tuple[str, int, str | None]:
        return "127.0.0.1", self._port, None

    async def __aenter__(self) -> Baseline:
        try:
            await asyncio.to_thread(self._start)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    def _start(self) -> None:
        assert self._tmp is None
        self._tmp = tempfile.TemporaryDirectory(prefix=f"cim-bench-{self.name}-")
        data = Path(self._tmp.name)
        nats_service = start_nats(data, log_path=data / "nats.log")
        self._services.append(nats_service)
        env = {**os.environ, "BENCH_NATS_URL": nats_service.url, "PYTHONUNBUFFERED": "1"}
        if self.name == "ideal":
            redis_service = start_redis(data, log_path=data / "redis.log", aof=True)
            self._services.append(redis_service)
            env["BENCH_REDIS_URL"] = redis_service.url
        self._relay_port, self._port = free_port(), free_port()
        module = "cim_cli.bench.ideal" if self.name == "ideal" else "cim_cli.bench.baseline"
        for name, mod, port in (
            ("relay", "cim_cli.bench.relay", self._relay_port),
            (self.name, module, self._port),
        ):
            self._procs[name] = spawn_module(mod, {**env, "BENCH_PORT": str(port)}, data / f"{name}.log")
            wait_for_port("127.0.0.1", port, 20.0, self._procs[name])

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        for proc in self._procs.values():
            proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(_STOP_TIMEOUT_S)
        for service in reversed(self._services):
            service.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def processes(self) -> dict[str, int]:
        procs = {GENERATOR: os.getpid()}
        procs.update({f"{s.name}-server": s.proc.pid for s in self._services})
        procs.update({name: p.pid for name, p in self._procs.items()})
        return procs

    async def users(self, names: list[str]) -> list[User]:
        return [User(n, n, "127.0.0.1", self._relay_port, "relay") for n in names]

    @property
    def plan(self) -> SendPlan:
        return SendPlan(*self.http, "/messages", bearer=False)
