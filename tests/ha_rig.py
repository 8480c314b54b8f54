"""The HA rig: a ``Cluster`` on a 3-server NATS cluster and a 3+3 Redis Cluster (the servers of
``cim up --ha``, on free ports, stopped afterwards also on failure), and the faults tests inject.

``kill_nats(i)`` SIGKILLs NATS server ``i`` (``nats_server_of(user)`` says which one a route or
node is connected to, from the servers' monitoring ports); ``redis_master_for(key)`` is the
address of the master that holds ``key``'s slot; ``kill_redis(addr)`` SIGKILLs that member and
waits until its replica is promoted and the cluster is ok again; ``migrate_slot_of_user(u)``
moves the slot of a user's keys to another master under load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import nats
from nats.errors import Error as NatsError
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from cim_cli.ops.ha import NatsCluster, RedisClusterServers
from cim_cli.ops.nats_auth import ADMIN
from cim_cli.ops.services import REDIS_USER, Service
from shared.keys import Keys
from shared.links import nats_options
from tests.harness import SECRET, Cluster, eventually

PROMOTION_TIMEOUT_S = 15.0
BUCKET_STREAM = "KV_cim-nodes"


class HaRig(Cluster):
    """``async with HaRig(tmp) as rig``: the servers only; add routes and nodes as with ``Cluster``."""

    def __init__(self, tmp: Path, **env: Any) -> None:
        super().__init__(tmp, SECRET, ha=True, **env)

    @property
    def nats_cluster(self) -> NatsCluster:
        assert self.local.nats_cluster is not None
        return self.local.nats_cluster

    @property
    def redis_cluster(self) -> RedisClusterServers:
        assert self.local.redis_cluster is not None
        return self.local.redis_cluster

    # ----- NATS ----------------------------------------------------------------------

    async def nats_server_of(self, user: str) -> int:
        """The index of the NATS server NATS user ``user`` (``route``, a node id) is connected to."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            for i in range(len(self.nats_cluster.services)):
                connz = (await http.get(self.nats_cluster.monitor_url(i) + "/connz?auth=true")).json()
                if any(c.get("authorized_user") == user for c in connz.get("connections") or ()):
                    return i
        raise AssertionError(f"NATS user {user!r} is connected to no server")

    async def kill_nats(self, i: int) -> None:
        """SIGKILL NATS server ``i``."""
        await self.nats_cluster.services[i].akill()

    async def restart_nats_server(self, i: int) -> None:
        """Start NATS server ``i`` again (its store) and wait until it is a current replica of the
        registry bucket again (so another server may die next)."""
        await self.nats_cluster.services[i].astart()
        name = f"cim-nats-{i + 1}"
        await eventually(lambda: self._bucket_has(name), timeout=30, interval=0.2, what=f"{name} current")

    async def bucket_answers(self) -> None:
        """Until the registry bucket answers (it has a leader: after a server's loss, elections)."""
        await eventually(lambda: self._bucket_has(""), timeout=30, interval=0.2, what="the bucket's leader")

    async def _bucket_has(self, server: str) -> bool:
        """The registry bucket answers, and ``server`` ("": any) leads it or is a current replica."""
        nc = await nats.connect(**nats_options(self.local.nats_url))
        try:
            cluster = (await nc.jetstream(timeout=2).stream_info(BUCKET_STREAM)).cluster
        except NatsError:
            return False
        finally:
            await nc.close()
        if cluster is None or not cluster.leader:
            return False
        current = {cluster.leader, *(r.name for r in cluster.replicas or () if r.current and not r.offline)}
        return not server or server in current

    # ----- Redis ---------------------------------------------------------------------

    def _member(self, addr: str) -> Service:
        return next(s for s in self.redis_cluster.services if f"{s.host}:{s.port}" == addr)

    async def _ranges(self) -> list[tuple[int, int, str]]:
        """``(first slot, last slot, host:port of its master)``, as a live member sees them."""
        live = next(s for s in self.redis_cluster.services if s.alive)
        client = self.redis_cluster.admin(live)
        try:
            ranges = await client.execute_command("CLUSTER", "SLOTS")
        finally:
            await client.aclose()
        return [(int(first), int(last), f"{master[0]}:{master[1]}") for first, last, master, *_ in ranges]

    async def _owner(self, slot: int) -> str:
        return next(owner for first, last, owner in await self._ranges() if first <= slot <= last)

    async def redis_master_for(self, key: str) -> str:
        """``host:port`` of the master that serves ``key``'s slot now."""
        return await self._owner(key_slot(key.encode()))

    def member_name(self, addr: str) -> str:
        return self._member(addr).name

    def client(self, addr: str, user: str | None = REDIS_USER) -> Redis:
        """A plain client of member ``addr`` as cim's own user (``None``: no user), which does
        not retry (close it)."""
        member = self._member(addr)
        auth = {"username": user, "password": self.redis_cluster.password} if user else {}
        return Redis(host=member.host, port=member.port, retry=Retry(NoBackoff(), 0), **auth)

    async def kill_redis(self, addr: str) -> None:
        """SIGKILL member ``addr`` and wait until its slots are served by another member (its
        replica promoted, when it was a master) and the cluster is ok with three masters."""
        mine = [first for first, _, owner in await self._ranges() if owner == addr]
        await self._member(addr).akill()

        async def moved() -> bool:
            ranges = await self._ranges()
            return all(owner != addr for first, _, owner in ranges if first in mine)

        await eventually(moved, timeout=PROMOTION_TIMEOUT_S, interval=0.1, what=f"{addr}'s slots served")
        await self.redis_cluster.wait_healthy(PROMOTION_TIMEOUT_S, replicas=False)

    async def migrate_slot_of_user(self, user: str, prefix: str = "cim:") -> str:
        """Move the slot of ``user``'s keys to another master, keys and all, while clients use it:
        ``CLUSTER SETSLOT`` IMPORTING / MIGRATING, ``MIGRATE`` in batches, then ``SETSLOT NODE``
        on every master (clients meanwhile get ASK, TRYAGAIN, then MOVED). Returns the new master."""
        slot = key_slot(Keys(prefix).seq(user).encode())
        source = await self._owner(slot)
        masters = sorted({owner for _, _, owner in await self._ranges()})
        target = next(addr for addr in masters if addr != source)
        admins = {addr: self.redis_cluster.admin(self._member(addr)) for addr in masters}
        try:
            ids = {addr: _text(await c.execute_command("CLUSTER", "MYID")) for addr, c in admins.items()}
            await admins[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
            await admins[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
            host, port = target.rsplit(":", 1)
            auth = ("AUTH2", ADMIN, self.redis_cluster.admin_password)
            while keys := await admins[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                await admins[source].execute_command("MIGRATE", host, port, "", 0, 5000, *auth, "KEYS", *keys)
            for client in admins.values():
                await client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
            return target
        finally:
            for client in admins.values():
                await client.aclose()

    async def role(self, addr: str) -> str:
        """``master`` or ``slave``, as member ``addr`` says."""
        _, role, _ = await self.redis_cluster.state(self._member(addr))
        return role


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
