"""shared.inbox over a real Redis: store assigns gap-free seqs (one or many recipients per call),
read_after pages, idempotency, count and age retention."""

from __future__ import annotations

import asyncio

import msgpack
import redis.asyncio as aioredis

from shared import inbox
from shared.inbox import Retention
from shared.keys import Keys
from shared.message import message
from shared.scripts import Scripts

HOUR = Retention(seconds=3600, count=1000, idempotency_s=600)


async def _store(
    redis: aioredis.Redis,
    keys: Keys,
    users: list[str],
    body: str,
    retention: Retention = HOUR,
    idem_scope: str | None = None,
    group: str | None = None,
) -> inbox.Batch:
    kind = "p2p" if group is None else "group"
    fields = message(id=f"id-{body}", kind=kind, sender="bob", body=body, group=group)
    return await inbox.store_many(
        redis,
        Scripts.register(redis),
        keys,
        users=users,
        packed=inbox.pack(fields),
        msg_id=f"id-{body}",
        retention=retention,
        idem_scope=idem_scope,
    )


async def _seqs(redis: aioredis.Redis, keys: Keys, user: str) -> list[int]:
    return [f["seq"] for f in await inbox.read_after(redis, keys, user, 0)]


async def test_store_and_read_after(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    stored = [await _store(redis, keys, ["alice"], body) for body in "abcd"]
    assert [s.deliveries[0].seq for s in stored] == [1, 2, 3, 4]
    assert all(s.deliveries[0].new and not s.repeat for s in stored)
    assert stored[0].id == "id-a" and stored[0].ts > 0 and stored[0].deliveries[0].nodes == ()
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
    stored = await asyncio.gather(*(_store(redis, keys, ["alice", "carl"], f"m{i}") for i in range(40)))
    for i in (0, 1):
        assert sorted(s.deliveries[i].seq for s in stored) == list(range(1, 41))
    assert await _seqs(redis, keys, "alice") == list(range(1, 41))


async def test_one_message_for_many_recipients(redis: aioredis.Redis, prefix: str) -> None:
    """A group of more than one batch: every member its own gap-free seq and the node of its
    session, one packed message, each frame names its own recipient."""
    keys = Keys(prefix)
    members = [f"m{i}" for i in range(inbox.BATCH + 20)]
    await redis.hset(keys.session("m3"), "default", "n1 c 1")
    await _store(redis, keys, ["m0", "m1"], "before")  # m0 and m1 are one seq ahead
    stored = await _store(redis, keys, members, "hi", group="team")
    assert [d.to for d in stored.deliveries] == members and not stored.repeat
    assert [d.seq for d in stored.deliveries[:4]] == [2, 2, 1, 1]
    assert {d.seq for d in stored.deliveries[2:]} == {1}
    assert [d.nodes for d in stored.deliveries[2:5]] == [(), ("n1",), ()]
    last = members[-1]
    [frame] = await inbox.read_after(redis, keys, last, 0)
    assert frame == {
        "t": "msg", "id": "id-hi", "kind": "group", "group": "team", "from": "bob", "to": last,
        "body": "hi", "seq": 1, "ts": stored.deliveries[-1].ts,
    }  # fmt: skip
    assert await _seqs(redis, keys, "m0") == [1, 2]


async def test_idempotent_store_returns_the_first_answer(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    first = await _store(redis, keys, ["alice", "carl"], "a", idem_scope="cmid-1")
    again = await _store(redis, keys, ["alice", "carl"], "other", idem_scope="cmid-1")
    assert again.repeat and (again.ts, again.id) == (first.ts, first.id)
    assert [(d.new, d.seq) for d in again.deliveries] == [(False, 1), (False, 1)]
    assert await _seqs(redis, keys, "alice") == [1] and await _seqs(redis, keys, "carl") == [1]
    # a retry that reaches a member the first attempt missed stores for that one only
    third = await _store(redis, keys, ["alice", "dora"], "a", idem_scope="cmid-1")
    assert [(d.new, d.seq) for d in third.deliveries] == [(False, 1), (True, 1)]
    assert third.id == first.id


async def test_count_retention_trims_the_head(redis: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    for i in range(10):
        await _store(redis, keys, ["alice"], str(i), retention=Retention(3600, 3, 600))
    assert await _seqs(redis, keys, "alice") == [8, 9, 10]
    assert 0 < await redis.pttl(keys.inbox("alice")) <= 3600 * 1000


async def _add_old(redis: aioredis.Redis, keys: Keys, user: str, count: int, ts: int) -> None:
    """``count`` entries that entered at ``ts`` (as a store then would have written them)."""
    packed = inbox.pack(message(id="old", kind="p2p", sender="bob", body="old"))
    for _ in range(count):
        seq = await redis.incr(keys.seq(user))
        await redis.xadd(keys.inbox(user), {"m": packed, "ts": ts}, id=f"{seq}-0")


async def test_age_retention_drops_old_entries_and_keeps_recent_ones(
    redis: aioredis.Redis, prefix: str
) -> None:
    """Every 16th store of a recipient checks the inbox head's age and drops up to a page of
    entries older than the retention; entries within it are never dropped."""
    keys = Keys(prefix)
    now = int((await redis.time())[0]) * 1000
    await _add_old(redis, keys, "alice", 230, now - 86_400_000)  # seq 1-230: older than an hour
    await _add_old(redis, keys, "alice", 5, now)  # seq 231-235: recent
    for i in range(236, 272):
        await _store(redis, keys, ["alice"], f"m{i}")
        seqs = await _seqs(redis, keys, "alice")
        assert seqs[-(i - 230) :] == list(range(231, i + 1))  # the recent ones are all there
        # 240: 1-100 dropped, 256: 101-200; a page at a time
        assert seqs[0] == (1 if i < 240 else 101 if i < 256 else 201)
    await _store(redis, keys, ["alice"], "m272")  # the rest of the old ones
    assert await _seqs(redis, keys, "alice") == list(range(231, 273))


async def test_old_entries_stored_with_their_recipient_still_read(redis: aioredis.Redis, prefix: str) -> None:
    """Entries written before the stored form left ``to`` out read the same."""
    keys = Keys(prefix)
    packed = msgpack.packb({"id": "x", "kind": "p2p", "from": "bob", "to": "alice", "body": "b"})
    await redis.xadd(keys.inbox("alice"), {"m": packed, "ts": 5}, id="1-0")
    [frame] = await inbox.read_after(redis, keys, "alice", 0)
    assert frame == {
        "t": "msg", "id": "x", "kind": "p2p", "from": "bob", "to": "alice", "body": "b", "seq": 1, "ts": 5,
    }  # fmt: skip


async def test_one_recipient_store_on_a_callers_pipeline(redis: aioredis.Redis, prefix: str) -> None:
    """``store`` queues on the caller's pipeline (plain ``execute``: redis-py loads the script),
    ``parse_stored`` reads its reply, ``msg_frame`` is the frame a replay gives."""
    keys, scripts = Keys(prefix), Scripts.register(redis)
    packed = inbox.pack_message(id="m", kind="group", sender="bob", to="alice", body="hi", group="team")
    async with redis.pipeline(transaction=False) as pipe:
        for _ in range(2):
            await inbox.store(
                pipe, scripts, keys, user="alice", packed=packed, msg_id="m", retention_s=3600,
                retention_count=100, idem_scope="once",
            )  # fmt: skip
        first, again = [inbox.parse_stored(r) for r in await pipe.execute()]
    assert first.new and first.seq == 1 and first.id == "m"
    assert not again.new and (again.seq, again.ts, again.id) == (1, first.ts, "m")
    [replayed] = await inbox.read_after(redis, keys, "alice", 0)
    assert inbox.msg_frame(packed, 1, first.ts) == replayed and replayed["group"] == "team"
