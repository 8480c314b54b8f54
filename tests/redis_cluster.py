"""A small Redis Cluster for tests: 3 masters on free ports, no replicas, no auth.

Slots are assigned with ``CLUSTER ADDSLOTS`` (in chunks) and the masters introduced with
``CLUSTER MEET``, both through redis-py (redis 6.2 has no ``ADDSLOTSRANGE``); ``start`` returns
once every master reports ``cluster_state:ok`` and knows the others. (The full rig with
replicas and auth, for ``cim up --ha``, is the operations code's.)
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from cim_cli.ops.services import Service, free_port, redis_server_binary

__all__ = ["RedisClusterRig"]

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
        rig = cls([_master(data_dir / f"m{i}") for i in range(masters)])
        try:
            for service in rig.services:
                service.start()
            rig._form(timeout)
        except BaseException:
            rig.stop()
            raise
        return rig

    def _form(self, timeout: float) -> None:
        clients = [redis.Redis(host=s.host, port=s.port) for s in self.services]
        try:
            share = SLOTS // len(clients)
            for i, client in enumerate(clients):
                last = SLOTS if i == len(clients) - 1 else (i + 1) * share
                for start in range(i * share, last, _CHUNK):
                    client.execute_command("CLUSTER ADDSLOTS", *range(start, min(start + _CHUNK, last)))
            for service in self.services[1:]:
                clients[0].execute_command("CLUSTER MEET", service.host, service.port)
            deadline = time.monotonic() + timeout
            while not all(_ready(client, len(clients)) for client in clients):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Redis Cluster not ok after {timeout}s")
                time.sleep(0.05)  # the gossip has no event to wait on
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        for service in self.services:
            service.stop()


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


def _master(data_dir: Path) -> Service:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _port()
    conf = data_dir / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                f"bind {_HOST}",
                f"port {port}",
                f"dir {data_dir}",
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 5000",
                "appendonly no",
                'save ""',
            ]
        )
        + "\n"
    )
    log = data_dir / "redis.log"
    return Service(f"redis-cluster-{port}", [redis_server_binary(), str(conf)], _HOST, port, log_path=log)
