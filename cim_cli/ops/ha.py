"""``cim up --ha``: a 3-server NATS cluster and a Redis Cluster of 3 masters with a replica each.

Every member is a ``Service`` (restartable the same way, with its data) configured by a file of
its own in the data folder (mode 0600):

- **NATS** ``nats-1`` … ``nats-3``: a client port and a cluster port each, routes to the other
  two (authenticated by a cluster user of their own, not advertised to clients), JetStream in
  ``DATA/nats-N/``, the users and permissions of ``cim up`` (``nats_auth``). Children get
  all three servers in ``CIM_NATS_URL`` and ``CIM_NATS_KV_REPLICAS=3``.
- **Redis** ``redis-1`` … ``redis-6``: ``cluster-enabled``, data and ``nodes.conf`` in
  ``DATA/redis-N/``, a low ``cluster-node-timeout`` (a dead master's replica takes over in
  about two seconds), the ``cim`` user of ``cim up`` plus the ``CLUSTER`` subcommands a cluster
  client needs to learn the slots, a ``replica`` user that may only replicate (``masteruser``),
  and an ``admin`` user that only the launcher uses (``redis-cli --cluster create``, health).
  Children get ``CIM_REDIS_URL=redis+cluster://cim:PASS@h:p1,...`` (every member).

Redis 6.2 puts a member's cluster bus on its port + 10000, so Redis ports are picked below
the ephemeral range with both ports free. The ports are kept in ``DATA/ha.json``: a Redis
Cluster's members know each other by address, so the next ``cim up --ha`` on the same data
folder takes the same ports and finds its cluster (and data) again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from nats.errors import Error as NatsError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from cim_cli.ops.data_folder import private_dir, write_private
from cim_cli.ops.nats_auth import ADMIN, NatsAuth
from cim_cli.ops.services import (
    ADMIN_RULES,
    REDIS_RULES,
    REDIS_USER,
    Service,
    free_port,
    nats_server_binary,
    redis_config,
    redis_server_binary,
    redis_user,
)
from shared.links import connect_once

__all__ = ["NatsCluster", "RedisClusterServers", "ha_ports", "jetstream_answers"]

NATS_SERVERS = 3
REDIS_MASTERS = 3
REDIS_MEMBERS = 2 * REDIS_MASTERS
NODE_TIMEOUT_MS = 1500
BUS_OFFSET = 10000
REDIS_PORTS = (20000, 30000)
"""Where Redis ports are picked: below the ephemeral range (32768+), with room for the bus."""
CLUSTER_RULES = (
    f"{REDIS_RULES} +cluster|slots +cluster|nodes +cluster|info +cluster|keyslot +readonly +readwrite"
)
"""The ``cim`` user on a cluster member: ``cim up``'s rules plus the ``CLUSTER`` subcommands a
cluster client reads the slot map with (``CLUSTER`` itself is ``@dangerous``)."""
REPLICA_USER = "replica"
REPLICA_RULES = "+psync +replconf +ping"
CLUSTER_USER = "cluster"
PORTS_FILE = "ha.json"


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _redis_port(host: str, taken: set[int]) -> int:
    """A port for a Redis Cluster member: it and its bus port (+10000) both free."""
    for _ in range(1000):
        port = random.randrange(*REDIS_PORTS)
        if port not in taken and _bindable(host, port) and _bindable(host, port + BUS_OFFSET):
            return port
    raise OSError(f"no free port pair for Redis between {REDIS_PORTS[0]} and {REDIS_PORTS[1]}")


def ha_ports(data_dir: Path, host: str) -> dict[str, list[int]]:
    """The ports of the members: ``nats`` (client, cluster, client, cluster, ...) and ``redis``,
    kept in ``DATA/ha.json`` once picked, so that a restart finds its cluster again."""
    path = data_dir / PORTS_FILE
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        kept = json.loads(path.read_text())
        if len(kept["nats"]) == 2 * NATS_SERVERS and len(kept["redis"]) == REDIS_MEMBERS:
            return {"nats": list(kept["nats"]), "redis": list(kept["redis"])}
    ports = {"nats": [free_port(host) for _ in range(2 * NATS_SERVERS)], "redis": []}
    for _ in range(REDIS_MEMBERS):
        ports["redis"].append(_redis_port(host, set(ports["redis"])))
    write_private(path, json.dumps(ports) + "\n")
    return ports


def _password() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class NatsCluster:
    """Three ``nats-server`` routed to each other, each with JetStream and the users of ``auth``."""

    data_dir: Path
    auth: NatsAuth
    host: str
    ports: list[int]
    """Client port, cluster port, for each server in turn."""
    log_dir: Path
    tls: tuple[Path, Path] | None = None
    detach: bool = False
    monitor: bool = False
    """A monitoring port on each server (``monitor_url``; tests find who is connected where)."""
    route_password: str = field(default_factory=_password, repr=False)
    services: list[Service] = field(default_factory=list)
    monitor_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        binary = nats_server_binary()
        self.monitor_ports = [free_port(self.host) for _ in range(NATS_SERVERS)] if self.monitor else []
        for i in range(NATS_SERVERS):
            args = [binary, "-c", str(self._conf(i))]
            log = self.log_dir / f"nats-{i + 1}.log"
            self.services.append(
                Service(f"nats-{i + 1}", args, self.host, self.ports[2 * i], "", log, None, self.detach)
            )
        self.write_configs()

    def _conf(self, i: int) -> Path:
        return self.data_dir / f"nats-{i + 1}.conf"

    def _route(self, i: int) -> str:
        return (
            f"nats://{CLUSTER_USER}:{quote(self.route_password, safe='')}@{self.host}:{self.ports[2 * i + 1]}"
        )

    def write_configs(self) -> None:
        """(Re)write every server's configuration (its users: SIGHUP makes a server reread it)."""
        for i in range(NATS_SERVERS):
            cluster = {
                "name": "cim",
                "listen": f"{self.host}:{self.ports[2 * i + 1]}",
                "authorization": {"user": CLUSTER_USER, "password": self.route_password},
                "routes": [self._route(j) for j in range(NATS_SERVERS) if j != i],
                "no_advertise": True,
            }
            store = private_dir(self.data_dir / f"nats-{i + 1}")
            extra = {"server_name": f"cim-nats-{i + 1}", "cluster": cluster}
            if self.monitor_ports:
                extra["http"] = f"{self.host}:{self.monitor_ports[i]}"
            write_private(
                self._conf(i), self.auth.render(self.host, self.ports[2 * i], store, self.tls, extra)
            )

    def reload(self) -> None:
        """Make every running server reread its configuration."""
        for service in self.services:
            service.signal(signal.SIGHUP)

    def server_urls(self, user: str) -> list[str]:
        """The URL of each server, with ``user``'s credentials."""
        return [self.auth.url(user, s.host, s.port, self.tls is not None) for s in self.services]

    def url(self, user: str) -> str:
        """``CIM_NATS_URL`` for ``user``: the three servers, each with its credentials."""
        return ",".join(self.server_urls(user))

    @property
    def addresses(self) -> str:
        return ",".join(f"{s.host}:{s.port}" for s in self.services)

    def monitor_url(self, i: int) -> str:
        """The monitoring endpoint of server ``i`` (with ``monitor``)."""
        return f"http://{self.host}:{self.monitor_ports[i]}"

    async def wait_jetstream(self, user: str, ca: str = "", timeout: float = 30.0) -> None:
        """Until JetStream answers through every server (the cluster elected its leader and every
        server reaches it), as ``user``; ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        for server in self.server_urls(user):
            while not await jetstream_answers(server, ca):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"NATS cluster: JetStream not ready after {timeout:.0f}s ({server})")
                await asyncio.sleep(0.2)


async def jetstream_answers(server: str, ca: str = "") -> bool:
    """Whether JetStream answers through ``server`` (a URL with its user) now."""
    try:
        nc = await connect_once(server, ca=ca)
    except Exception:  # nats-py raises several unrelated types for a server not ready
        return False
    try:
        await nc.jetstream(timeout=2).account_info()
    except NatsError:  # no leader yet: 503 "JetStream system temporarily unavailable", timeouts
        return False
    finally:
        await nc.close()
    return True


@dataclass
class RedisClusterServers:
    """Six ``redis-server`` with ``cluster-enabled``: 3 masters and a replica of each once
    ``form`` has run (``redis-cli --cluster create``, or nothing when they formed before)."""

    data_dir: Path
    host: str
    ports: list[int]
    log_dir: Path
    aof: bool = True
    detach: bool = False
    password: str = field(default_factory=_password, repr=False)
    """The ``cim`` user's."""
    admin_password: str = field(default_factory=_password, repr=False)
    replica_password: str = field(default_factory=_password, repr=False)
    services: list[Service] = field(default_factory=list)

    def __post_init__(self) -> None:
        binary = redis_server_binary()
        for i, port in enumerate(self.ports):
            name = f"redis-{i + 1}"
            conf = write_private(self.data_dir / f"{name}.conf", self._config(i, port))
            log = self.log_dir / f"{name}.log"
            self.services.append(
                Service(name, [binary, str(conf)], self.host, port, "", log, None, self.detach)
            )

    def _store(self, i: int) -> Path:
        return private_dir(self.data_dir / f"redis-{i + 1}")

    def _config(self, i: int, port: int) -> str:
        lines = [
            *redis_config(self.host, port, self._store(i), self.aof),
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {NODE_TIMEOUT_MS}",
            f"masteruser {REPLICA_USER}",
            f"masterauth {self.replica_password}",
            redis_user(REDIS_USER, self.password, CLUSTER_RULES),
            redis_user(REPLICA_USER, self.replica_password, REPLICA_RULES),
            redis_user(ADMIN, self.admin_password, ADMIN_RULES),
        ]
        return "\n".join(lines) + "\n"

    def url(self, user: str = REDIS_USER) -> str:
        """``redis+cluster://user:PASS@h:p1,h:p2,...`` (every member) for ``cim`` or ``admin``."""
        password = self.admin_password if user == ADMIN else self.password
        return f"redis+cluster://{user}:{quote(password, safe='')}@{self.addresses}"

    @property
    def addresses(self) -> str:
        return ",".join(f"{s.host}:{s.port}" for s in self.services)

    def admin(self, service: Service) -> Redis:
        """A plain client of one member, as ``admin`` (close it)."""
        return Redis(
            host=service.host,
            port=service.port,
            username=ADMIN,
            password=self.admin_password,
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=2,
        )

    async def form(self, timeout: float = 30.0) -> None:
        """Create the cluster unless its members formed one before (a restart on the same data
        folder), then ``wait_healthy``."""
        if not await self._has_slots(timeout):
            await self._create()
        await self.wait_healthy(timeout)

    async def _has_slots(self, timeout: float) -> bool:
        """Whether the first member knows every slot assigned; it may be loading its data first."""
        deadline = time.monotonic() + timeout
        while True:
            client = self.admin(self.services[0])
            try:
                return "cluster_slots_assigned:16384" in await client.execute_command("CLUSTER", "INFO")
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.services[0].name} does not answer: {exc!r}") from exc
            finally:
                await client.aclose()
            await asyncio.sleep(0.1)

    async def _create(self) -> None:
        binary = str(Path(redis_server_binary()).with_name("redis-cli"))
        addresses = [f"{s.host}:{s.port}" for s in self.services]
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--cluster",
            "create",
            *addresses,
            "--cluster-replicas",
            "1",
            "--cluster-yes",
            "--user",
            ADMIN,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "REDISCLI_AUTH": self.admin_password},
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0 or b"[OK] All 16384 slots covered" not in out:
            text = out.decode(errors="replace")[-2000:]
            raise RuntimeError(f"redis-cli --cluster create failed ({proc.returncode}): {text}")

    async def state(self, service: Service) -> tuple[str, str, bool]:
        """One member's ``(cluster_state, role, replication ok)``: a master with a replica
        attached, a replica whose link to its master is up."""
        client = self.admin(service)
        try:
            info = await client.execute_command("CLUSTER", "INFO")
            repl = await client.info("replication")
        finally:
            await client.aclose()
        state = next(
            line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("cluster_state:")
        )
        if repl["role"] == "master":
            return state, "master", int(repl.get("connected_slaves", 0)) >= 1
        return state, "slave", repl.get("master_link_status") == "up"

    async def wait_healthy(self, timeout: float = 30.0, replicas: bool = True) -> None:
        """Until every running member says ``cluster_state:ok`` and there are 3 masters (with
        ``replicas``: each with a replica attached, and every replica linked)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                states = [await self.state(s) for s in self.services if s.alive]
                masters = [ok for _, role, ok in states if role == "master"]
                healthy = all(st == "ok" for st, _, _ in states) and len(masters) == REDIS_MASTERS
                if healthy and (not replicas or all(ok for _, _, ok in states)):
                    return
                last = states
            except (RedisError, OSError) as exc:  # a member restarting, or still loading
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis Cluster not healthy after {timeout:.0f}s: {last!r}")
            await asyncio.sleep(0.1)
