"""shared.scripts: ``Scripts.execute`` runs a pipeline's scripts without a SCRIPT EXISTS round
trip and recovers when Redis has lost its script cache, running nothing twice."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared import inbox
from shared.keys import Keys
from shared.message import message
from shared.scripts import Scripts, evalsha


async def _store_and_count(redis: aioredis.Redis, scripts: Scripts, keys: Keys, body: str) -> list:
    packed = inbox.pack(message(id=body, kind="p2p", sender="bob", body=body))
    store = evalsha(scripts.store_batch, [keys.seq("ann"), keys.inbox("ann"), keys.session("ann")],
                    [packed, 3600_000, 100, 600, 0, body])  # fmt: skip
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(keys.prefix + "counter")
        pipe.execute_command(*store)
        pipe.incr(keys.prefix + "counter")
        return await scripts.execute(pipe)


async def test_execute_recovers_a_flushed_script_cache(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    await redis.script_flush()
    first = await _store_and_count(redis, scripts, keys, "a")
    second = await _store_and_count(redis, scripts, keys, "b")
    assert [first[0], first[2], second[0], second[2]] == [1, 2, 3, 4]  # each INCR ran once
    assert [reply[4] for reply in (first[1], second[1])] == [1, 2]  # {now, ts, id, new, seq, node}
    assert [f["body"] for f in await inbox.read_after(redis, keys, "ann", 0)] == ["a", "b"]


async def _script_commands(redis: aioredis.Redis) -> int:
    """SCRIPT calls so far (``cmdstat_script`` on Redis 6, ``cmdstat_script|exists`` etc. on 7)."""
    stats = await redis.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_script"))


async def test_execute_skips_the_script_exists_round_trip(redis: aioredis.Redis, prefix: str) -> None:
    keys, scripts = Keys(prefix), Scripts.register(redis)
    await _store_and_count(redis, scripts, keys, "a")  # loads the scripts
    before = await _script_commands(redis)
    await _store_and_count(redis, scripts, keys, "b")
    assert await _script_commands(redis) == before
    async with redis.pipeline(transaction=False) as pipe:  # what redis-py does on its own
        await scripts.max_set(keys=[keys.prefix + "max"], args=[1], client=pipe)
        await pipe.execute()
    assert await _script_commands(redis) == before + 1
