"""Confirming that Redis replicas hold a write (``CIM_REDIS_WAIT``).

Redis replication is asynchronous: ``WAIT n timeout`` only reports how many replicas have
acknowledged the writes of *this connection* so far; it is not a consensus. A write that
``confirm_replicas`` accepted survives the loss of its master unless the replica promoted
in its place is not one of those that confirmed.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

__all__ = ["Unconfirmed", "confirm_replicas"]


class Unconfirmed(Exception):
    """Fewer replicas than required confirmed a write within the timeout."""

    def __init__(self, key: str, wanted: int, confirmed: int, timeout_ms: int) -> None:
        super().__init__(
            f"{confirmed} of {wanted} Redis replicas confirmed the write of {key!r} within {timeout_ms} ms"
        )
        self.key = key
        self.wanted = wanted
        self.confirmed = confirmed


async def confirm_replicas(redis: Redis | RedisCluster, key: str, n: int, timeout_ms: int) -> int:
    """Run ``WAIT n timeout_ms`` where ``key`` lives (on a cluster: the master of its slot) and
    return how many replicas confirmed; raise ``Unconfirmed`` when fewer than ``n`` did.
    ``n == 0`` returns at once. Call it right after the write, on the same client."""
    if n <= 0:
        return 0
    options: dict[str, Any] = {}
    if isinstance(redis, RedisCluster):
        options["target_nodes"] = redis.get_node_from_key(key)
    confirmed = int(await redis.execute_command("WAIT", n, timeout_ms, **options))
    if confirmed < n:
        raise Unconfirmed(key, n, confirmed, timeout_ms)
    return confirmed
