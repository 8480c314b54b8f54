"""Several hosts, for real: cim on three network namespaces joined by a bridge, clients in a
fourth, one host's processes SIGKILLed, nothing accepted lost.

The hosts (``tests.netns.Hosts``, addresses of a subnet that exists only in them):

- host 1: ``nats-1``, two Redis Cluster masters, the route;
- host 2: ``nats-2``, one Redis Cluster master, ``node-2``;
- host 3: ``nats-3``, ``node-3`` -- and no Redis: it is the host that dies, and a Redis Cluster
  without replicas loses the slots of a dead master (with replicas, a failover with asynchronous
  replication may lose what the dead master confirmed; the HA rig's tests cover that case);
- host 4: the clients (``tests/system/hosts_client.py``).

Every process is bound to its host's address and started with ``ip netns exec``; the three
``nats-server`` form one NATS cluster (JetStream, the registry bucket with 3 replicas, a user
per cim process as ``cim up`` makes them), the three Redis masters one Redis Cluster (ACL users
``cim`` and ``admin``, as ``cim up --ha``). The clients register six users (they land on the
nodes of hosts 2 and 3), make a group and send p2p and group messages across hosts; then host 3
is killed (its nats-server and its node, SIGKILL) and they send another round at once. The
clients of ``node-3`` must be back, through the route, on ``node-2``, and every message accepted
before and after (also those accepted for them while they were away) must have reached every
recipient once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from cim_cli.ops.ha import CLUSTER_RULES, jetstream_answers
from cim_cli.ops.nats_auth import ADMIN, ROUTE, NatsAuth, NatsUser, node_user, route_user
from cim_cli.ops.services import ADMIN_RULES, REDIS_USER, Service, child_env, nats_server_binary, redis_user
from tests import redis_cluster
from tests.harness import API_KEY, SECRET
from tests.netns import Hosts

ROOT = Path(__file__).resolve().parents[2]
HOSTS = 4
CLIENTS = 3
"""The clients' host (0-based); hosts 0-2 are the servers'."""
NODES = {"node-2": 1, "node-3": 2}
KILLED = 2
"""The host whose processes die."""
REDIS_MASTERS = [(0, 17001), (0, 17002), (1, 17001)]
"""(host, port) of each Redis Cluster master: none on the host that dies."""
NATS_PORT = 14222
NATS_CLUSTER_PORT = 16222
ROUTE_PORT = 18080
NODE_PORT = 19000
USERS = [f"user-{i}" for i in range(6)]
START_TIMEOUT_S = 15.0
CLIENT_TIMEOUT_S = 15.0
"""How long the clients wait for each round (deliveries, reconnects)."""
TEST_TIMEOUT_S = 45.0
REDIS_PASSWORD = "redis-" + "p" * 20


class Rig:
    """The processes on the hosts; ``close`` SIGKILLs every one of them (and shows every log
    when the test failed)."""

    def __init__(self, hosts: Hosts, tmp: Path) -> None:
        self.hosts = hosts
        self.tmp = tmp
        self.on_host: list[tuple[int, Service]] = []
        self.host_of: dict[str, int] = {}
        self.nats_auth = NatsAuth({ADMIN: NatsUser(ADMIN)})
        for user in (route_user(), *map(node_user, NODES)):
            self.nats_auth.add(user)

    def address(self, host: int) -> str:
        return self.hosts.addresses[host]

    def spawn(
        self, host: int, name: str, args: list[str], port: int, env: dict[str, str] | None = None
    ) -> Service:
        log = self.tmp / f"{name}.log"
        return self.run(
            host, Service(name, self.hosts.command(host, args), self.address(host), port, "", log, env)
        )

    def run(self, host: int, service: Service) -> Service:
        """Spawn ``service`` (its command already runs it on ``host``) and own it."""
        self.on_host.append((host, service))
        self.host_of[service.name] = host
        service.spawn()
        return service

    async def listening(self, *services: Service) -> None:
        """Until every one of ``services`` accepts connections on its host's address."""
        await asyncio.gather(
            *(
                asyncio.to_thread(
                    self.hosts.call, self.host_of[s.name], partial(s.wait_listening, START_TIMEOUT_S)
                )
                for s in services
            )
        )

    def kill(self, host: int) -> None:
        """SIGKILL every process of ``host`` at once, then reap them."""
        mine = [s for h, s in self.on_host if h == host]
        for service in mine:
            service.signal(signal.SIGKILL)
        for service in mine:
            service.kill()

    def close(self, failed: bool) -> None:
        for host in range(HOSTS):
            self.kill(host)
        if failed:
            for log in sorted(self.tmp.rglob("*.log")):
                sys.stderr.write(
                    f"----- {log.relative_to(self.tmp)} -----\n{log.read_text(errors='replace')[-3000:]}\n"
                )

    # ----- servers ---------------------------------------------------------------------

    def nats_urls(self, user: str) -> str:
        return ",".join(self.nats_auth.url(user, self.address(h), NATS_PORT) for h in range(3))

    async def start_nats(self) -> None:
        """Three ``nats-server`` routed to each other, JetStream on each; returns once JetStream
        answers through every one of them."""
        servers = []
        for host in range(3):
            routes = [f"nats://{self.address(h)}:{NATS_CLUSTER_PORT}" for h in range(3) if h != host]
            cluster = {
                "name": "cimh",
                "listen": f"{self.address(host)}:{NATS_CLUSTER_PORT}",
                "routes": routes,
                "no_advertise": True,  # clients keep to the listed URLs (with their credentials)
            }
            store = self.tmp / f"nats-{host + 1}"
            store.mkdir()
            extra = {"server_name": f"nats-{host + 1}", "cluster": cluster}
            conf = self.tmp / f"nats-{host + 1}.conf"
            conf.write_text(self.nats_auth.render(self.address(host), NATS_PORT, store, None, extra))
            servers.append(
                self.spawn(host, f"nats-{host + 1}", [nats_server_binary(), "-c", str(conf)], NATS_PORT)
            )
        await self.listening(*servers)
        urls = self.nats_urls(ADMIN).split(",")
        deadline = time.monotonic() + START_TIMEOUT_S
        await asyncio.to_thread(
            self.hosts.call, CLIENTS, lambda: asyncio.run(_jetstream_everywhere(urls, deadline))
        )

    async def start_redis(self) -> None:
        """The Redis Cluster of ``REDIS_MASTERS``, formed (every slot served)."""
        extra = [
            "user default off",
            redis_user(REDIS_USER, REDIS_PASSWORD, CLUSTER_RULES),
            redis_user(ADMIN, REDIS_PASSWORD, ADMIN_RULES),
        ]
        members = []
        for host, port in REDIS_MASTERS:
            service = redis_cluster.master(
                self.tmp / f"redis-{host + 1}-{port}",
                self.address(host),
                port,
                partial(self.hosts.command, host),
                extra,
            )
            members.append(self.run(host, service))
        await self.listening(*members)
        addresses = [(s.host, s.port) for s in members]
        form = partial(
            redis_cluster.form, addresses, START_TIMEOUT_S, username=ADMIN, password=REDIS_PASSWORD
        )
        await asyncio.to_thread(self.hosts.call, 0, form)

    @property
    def redis_url(self) -> str:
        seeds = ",".join(f"{self.address(h)}:{p}" for h, p in REDIS_MASTERS)
        return f"redis+cluster://{REDIS_USER}:{REDIS_PASSWORD}@{seeds}"

    @property
    def route_url(self) -> str:
        return f"http://{self.address(0)}:{ROUTE_PORT}"

    # ----- cim -------------------------------------------------------------------------

    def _cim(self, host: int, name: str, module: str, port: int, **cim_vars: str) -> Service:
        env = child_env(
            redis_url=self.redis_url,
            secret=SECRET,
            api_keys=API_KEY,
            nats_kv_replicas="3",
            registry_refresh_s="1",
            rate_limit="0",
            auth_rate="0",
            **cim_vars,
        )
        env["PYTHONPATH"] = _pythonpath()
        return self.spawn(host, name, [sys.executable, "-m", module], port, env)

    async def start_cim(self) -> None:
        """The route on host 1, a node on each of hosts 2 and 3."""
        route = self._cim(
            0,
            "route",
            "cim_route",
            ROUTE_PORT,
            nats_url=self.nats_urls(ROUTE),
            route_host=self.address(0),
            route_port=str(ROUTE_PORT),
        )
        nodes = [
            self._cim(
                host,
                node_id,
                "cim_node",
                NODE_PORT,
                nats_url=self.nats_urls(node_id),
                node_id=node_id,
                node_host=self.address(host),
                advertise_host=self.address(host),
                node_port=str(NODE_PORT),
                route_url=self.route_url,
                metrics_port="0",
            )
            for node_id, host in NODES.items()
        ]
        await self.listening(route, *nodes)


async def _jetstream_everywhere(urls: list[str], deadline: float) -> None:
    """Until JetStream answers through each server of ``urls`` (its cluster has a leader)."""
    for url in urls:
        while not await jetstream_answers(url):
            if time.monotonic() > deadline:
                raise TimeoutError(f"JetStream does not answer through {url.rpartition('@')[2]}")
            await asyncio.sleep(0.1)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with Hosts(HOSTS) as made:
        yield made


@contextlib.contextmanager
def _rig(hosts: Hosts, tmp: Path) -> Iterator[Rig]:
    rig = Rig(hosts, tmp)
    failed = True
    try:
        yield rig
        failed = False
    finally:
        rig.close(failed)


async def _line(stream: asyncio.StreamReader, what: str) -> dict:
    line = await asyncio.wait_for(stream.readline(), CLIENT_TIMEOUT_S + START_TIMEOUT_S)
    assert line, f"the clients ended before {what}"
    return json.loads(line)


async def _rounds(rig: Rig, clients: asyncio.subprocess.Process) -> tuple[dict, dict]:
    """The clients' two reports: the round before host 3 is killed, and the one after."""
    assert clients.stdin is not None and clients.stdout is not None
    before = await _line(clients.stdout, "the first round")
    assert set(before["nodes"].values()) == set(NODES), before  # users on both nodes' hosts
    rig.kill(KILLED)
    clients.stdin.write(b"node-3\n")
    await clients.stdin.drain()
    return before, await _line(clients.stdout, "the second round")


def _pythonpath() -> str:
    """This checkout first, so the processes in the namespaces import the code under test."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


async def _run(hosts: Hosts, tmp_path: Path) -> tuple[dict, dict]:
    """Start everything and the clients; their two reports. Every process is gone afterwards."""
    with _rig(hosts, tmp_path) as rig:
        await asyncio.gather(rig.start_nats(), rig.start_redis())
        await rig.start_cim()
        config = {
            "route": rig.route_url,
            "api_key": API_KEY,
            "users": USERS,
            "nodes": list(NODES),
            "timeout": CLIENT_TIMEOUT_S,
        }
        args = [sys.executable, "-m", "tests.system.hosts_client", json.dumps(config)]
        with (tmp_path / "clients.log").open("wb") as errors:
            clients = await asyncio.create_subprocess_exec(
                *hosts.command(CLIENTS, args),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                env={**os.environ, "PYTHONPATH": _pythonpath()},
            )
        try:
            reports = await _rounds(rig, clients)
            assert await asyncio.wait_for(clients.wait(), 10) == 0
        finally:
            if clients.returncode is None:
                clients.kill()
                await clients.wait()
    return reports


async def test_messages_cross_hosts_and_none_is_lost_when_a_host_dies(hosts: Hosts, tmp_path: Path) -> None:
    # Within pytest-timeout's limit, so that a hang still ends in the teardown (its own timeout
    # would end the process and leave the namespaces behind).
    async with asyncio.timeout(TEST_TIMEOUT_S):
        before, after = await _run(hosts, tmp_path)

    moved = [user for user, node in before["nodes"].items() if node == "node-3"]
    assert moved and all(after["nodes"]["after"][user] == "node-2" for user in moved), after["nodes"]
    # The second round starts with the kill: some of it was accepted for the dead node's users
    # before they were back (it reaches them by the replay of their inbox).
    assert after["accepted_while_away"] > 0, after["back_s"]
    expected = len(USERS) * len(USERS) * 2  # per round: n(n-1) p2p + n group messages
    assert len(after["accepted"]) == expected
    missing = {
        (msg_id, user)
        for msg_id, users in after["accepted"].items()
        for user in users
        if msg_id not in after["received"][user]
    }
    assert not missing, f"{len(missing)} accepted messages not received: {sorted(missing)[:10]}"
    assert all(len(ids) == len(set(ids)) for ids in after["received"].values())
