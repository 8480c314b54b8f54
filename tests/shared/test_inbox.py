"""shared.inbox over a real Redis: store assigns gap-free seqs, read_after pages, idempotency, trim."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from shared import inbox
from shared.keys import Keys
from shared.scripts import Scripts


async def _store(redis: aioredis.Redis, keys: Keys, user: str, bodies: list[str], **kw) -> list[inbox.Stored]:
    scripts = Scripts.register(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for body in bodies:
            packed = inbox.pack_message(id=f"id-{body}", kind="p2p", sender="bob", to=user, body=body)
            await inbox.store(
                pipe,
                scripts,
                keys,
                user=user,
                packed=packed,
                msg_id=f"id-{body}",
                retention_s=kw.get("retention_s", 3600),
                retention_count=kw.get("retention_count", 1000),
                idem_scope=kw.get("idem_scope"),
            )
        return [inbox.parse_stored(r) for r in await pipe.execute()]


async def test_store_and_read_after(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    stored = await _store(redis, keys, "alice", ["a", "b", "c", "d"])
    assert [s.seq for s in stored] == [1, 2, 3, 4] and all(s.new for s in stored)
    assert stored[0].id == "id-a" and stored[0].ts > 0
    frames = await inbox.read_after(redis, keys, "alice", 1)
    assert [f["seq"] for f in frames] == [2, 3, 4]
    assert frames[0] == {
        "t": "msg", "id": "id-b", "kind": "p2p", "from": "bob", "to": "alice", "body": "b",
        "seq": 2, "ts": stored[1].ts,
    }  # fmt: skip
    assert [f["seq"] for f in await inbox.read_after(redis, keys, "alice", 0, count=2)] == [1, 2]
    assert await inbox.read_after(redis, keys, "alice", 4) == []
    assert await inbox.read_after(redis, keys, "nobody", 0) == []


async def test_concurrent_stores_have_no_gap(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    batches = await asyncio.gather(
        *(_store(redis, keys, "alice", [f"{i}-{j}" for j in range(5)]) for i in range(8))
    )
    seqs = sorted(s.seq for batch in batches for s in batch)
    assert seqs == list(range(1, 41))


async def test_idempotent_store_returns_the_first_answer(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    (first,) = await _store(redis, keys, "alice", ["a"], idem_scope="cmid-1")
    (again,) = await _store(redis, keys, "alice", ["other"], idem_scope="cmid-1")
    assert not again.new and (again.seq, again.ts, again.id) == (first.seq, first.ts, first.id)
    assert len(await inbox.read_after(redis, keys, "alice", 0)) == 1


async def test_count_retention_trims_the_head(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    await _store(redis, keys, "alice", [str(i) for i in range(10)], retention_count=3)
    assert [f["seq"] for f in await inbox.read_after(redis, keys, "alice", 0)] == [8, 9, 10]
    assert 0 < await redis.pttl(keys.inbox("alice")) <= 3600 * 1000


def test_group_field_and_msg_frame() -> None:
    packed = inbox.pack_message(id="m", kind="group", sender="bob", to="alice", body="hi", group="team")
    frame = inbox.msg_frame(packed, 3, 99)
    assert frame["group"] == "team" and frame["seq"] == 3 and frame["ts"] == 99 and frame["t"] == "msg"
