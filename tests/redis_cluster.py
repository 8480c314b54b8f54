"""A small Redis Cluster for tests: 3 masters on free ports, no replicas, no auth.

Slots are assigned with ``CLUSTER ADDSLOTS`` (in chunks) and the masters introduced with
``CLUSTER MEET``, both through redis-py (redis 6.2 has no ``ADDSLOTSRANGE``); ``start`` returns
once every master reports ``cluster_state:ok`` and knows the others. (The full rig with
replicas and auth, for ``cim up --ha``, is the operations code's.) ``master`` and ``form`` are
the two steps on their own, for members on other hosts (``tests/system/test_hosts.py``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from cim_cli.ops.services import Service, free_port, redis_server_binary

__all__ = ["RedisClusterRig", "form", "master"]

SLOTS = 16384
_CHUNK = 2000
_HOST = "127.0.0.1"


@dataclass
class RedisClusterRig:
    services: list[Service]

    @property
    def url(self) -> str:
        """``CIM_REDIS_URL`` of the cluster: every master as a seed."""
        return "redis+cluster://" + ",".join(f"{s.host}:{s.port}" for s in self.services)

    @classmethod
    def start(cls, data_dir: Path, masters: int = 3, timeout: float = 20.0) -> RedisClusterRig:
        rig = cls([master(data_dir / f"m{i}") for i in range(masters)])
        try:
            for service in rig.services:
                service.start()
            form([(s.host, s.port) for s in rig.services], timeout)
        except BaseException:
            rig.stop()
            raise
        return rig

    def stop(self) -> None:
        for service in self.services:
            service.stop()


def form(members: list[tuple[str, int]], timeout: float, **auth: str) -> None:
    """Make the empty cluster-enabled redis-servers at ``members`` (host, port) one cluster, the
    slots shared evenly, as the user of ``auth`` (``username``, ``password``; none: the default
    user); returns once every member says ``cluster_state:ok`` and knows the others."""
    clients = [redis.Redis(host=host, port=port, **auth) for host, port in members]
    try:
        share = SLOTS // len(clients)
        for i, client in enumerate(clients):
            last = SLOTS if i == len(clients) - 1 else (i + 1) * share
            for start in range(i * share, last, _CHUNK):
                client.execute_command("CLUSTER ADDSLOTS", *range(start, min(start + _CHUNK, last)))
        for host, port in members[1:]:
            clients[0].execute_command("CLUSTER MEET", host, port)
        deadline = time.monotonic() + timeout
        while not all(_ready(client, len(clients)) for client in clients):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis Cluster not ok after {timeout}s")
            time.sleep(0.05)  # the gossip has no event to wait on
    finally:
        for client in clients:
            client.close()


def _ready(client: redis.Redis, masters: int) -> bool:
    info = client.cluster("INFO")
    return info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == masters


def _port() -> int:
    """A free port whose cluster bus port (10000 higher, at most 65535) is free too."""
    while True:
        port = free_port(_HOST)
        if port <= 55535 and _free(port + 10000):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((_HOST, port))
        except OSError:
            return False
    return True


def master(
    data_dir: Path,
    host: str = _HOST,
    port: int = 0,
    command: Callable[[list[str]], list[str]] = list,
    extra: Sequence[str] = (),
) -> Service:
    """A cluster-enabled redis-server on ``host:port`` (0: a free one of this namespace), no
    persistence, the ``extra`` lines of configuration (e.g. ACL users; none: no auth), not
    started; ``command`` wraps its command line (e.g. in ``ip netns exec``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or _port()
    conf = data_dir / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                f"bind {host}",
                f"port {port}",
                f"dir {data_dir}",
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 5000",
                "appendonly no",
                'save ""',
                *extra,
            ]
        )
        + "\n"
    )
    log = data_dir / "redis.log"
    args = command([redis_server_binary(), str(conf)])
    return Service(f"redis-cluster-{port}", args, host, port, log_path=log)
