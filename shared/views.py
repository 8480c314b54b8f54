"""The global views -- who is online, who is registered, a node's sessions -- read across the
user buckets.

Each view is one key per bucket (``shared.keys``: ``online:{u:<b>}`` and so on), in the slot
of that bucket's users, so the scripts that change them touch one slot. A read of the whole
view is one pipeline of ``BUCKETS`` commands: one round trip on one Redis, one per master
(in parallel) on a cluster, whose client groups the commands by node.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence

from shared.keys import BUCKETS, Keys, bucket
from shared.scripts import AnyRedis

__all__ = ["is_online", "node_members", "online_page", "online_total", "unknown_users"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def online_page(redis: AnyRedis, keys: Keys, prefix: str, limit: int) -> tuple[list[str], int]:
    """The first ``limit`` online usernames starting with ``prefix`` (sorted, byte order) and
    how many there are. One pipeline counts the range in every bucket (the total); a second
    reads the first ``limit`` of it from the buckets that hold any, merged and cut to the limit
    (a bucket's first ``limit`` hold every name of it the merged page can show)."""
    low = f"[{prefix}".encode() if prefix else b"-"
    high = f"[{prefix}".encode() + b"\xff" if prefix else b"+"
    async with redis.pipeline(transaction=False) as pipe:
        for b in range(BUCKETS):
            pipe.zlexcount(keys.online(b), low, high)
        counts = await pipe.execute()
    held = [b for b, count in enumerate(counts) if count]
    if not held:
        return [], 0
    async with redis.pipeline(transaction=False) as pipe:
        for b in held:
            pipe.zrangebylex(keys.online(b), low, high, start=0, num=min(limit, counts[b]))
        pages: list[list[bytes]] = await pipe.execute()
    merged = heapq.merge(*pages)
    return [_text(name) for name, _ in zip(merged, range(limit), strict=False)], sum(counts)


async def online_total(redis: AnyRedis, keys: Keys) -> int:
    """How many users are online (a ``ZCARD`` per bucket)."""
    async with redis.pipeline(transaction=False) as pipe:
        for b in range(BUCKETS):
            pipe.zcard(keys.online(b))
        return sum(await pipe.execute())


async def is_online(redis: AnyRedis, keys: Keys, user: str) -> bool:
    return await redis.zscore(keys.online(bucket(user)), user) is not None


async def node_members(redis: AnyRedis, keys: Keys, node: str) -> list[str]:
    """``user/device`` of every session the node's index holds (a ``SMEMBERS`` per bucket)."""
    async with redis.pipeline(transaction=False) as pipe:
        for b in range(BUCKETS):
            pipe.smembers(keys.node_sessions(node, b))
        sets = await pipe.execute()
    return sorted(_text(member) for members in sets for member in members)


async def unknown_users(redis: AnyRedis, keys: Keys, names: Sequence[str]) -> list[str]:
    """The ones of ``names`` that are not registered, in order (a ``ZMSCORE`` per bucket)."""
    by_bucket: dict[int, list[str]] = defaultdict(list)
    for name in names:
        by_bucket[bucket(name)].append(name)
    if not by_bucket:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for b, group in by_bucket.items():
            pipe.zmscore(keys.users(b), group)
        replies = await pipe.execute()
    known = {
        name
        for group, scores in zip(by_bucket.values(), replies, strict=True)
        for name, score in zip(group, scores, strict=True)
        if score is not None
    }
    return [name for name in names if name not in known]
