"""Delayed messages: scheduled answer, fire on time, exactly once across replicas and crashes."""

from __future__ import annotations

import time

import msgpack

from shared.inbox import read_after
from tests.harness import eventually
from tests.route.conftest import MakeRoute, RouteUnderTest, next_payload


async def inbox(route: RouteUnderTest, user: str) -> list[dict]:
    return await read_after(route.ctx.redis, route.ctx.keys, user, 0)


async def test_delayed_fires_once_on_time(route: RouteUnderTest, nc) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    await route.connect("bob")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    msg = {"to": "bob", "body": "later", "delay_ms": 300, "client_msg_id": "d-1"}
    resp = await route.http.post("/messages", json=msg, headers=ann)
    assert resp.status_code == 202
    answer = resp.json()
    assert answer["seq"] is None and answer["status"] == "scheduled" and answer["due"] == answer["ts"] + 300
    assert (await route.http.post("/messages", json=msg, headers=ann)).json() == answer  # idempotent
    assert await inbox(route, "bob") == []
    [item] = (await next_payload(sub, timeout=3))["items"]
    fired_at = int(time.time() * 1000)
    assert item["id"] == answer["id"] and item["seq"] == 1 and item["body"] == "later"
    assert answer["due"] <= item["ts"] <= answer["due"] + 1000 and fired_at <= answer["due"] + 1500
    assert [m["id"] for m in await inbox(route, "bob")] == [answer["id"]]
    assert await route.ctx.redis.zcard(route.ctx.keys.delayed) == 0
    await route.ctx.history.flush(5)
    page = (await route.http.get("/history", params={"with": "bob"}, headers=ann)).json()["messages"]
    assert [m["id"] for m in page] == [answer["id"]]


async def test_delayed_group_message(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    for name in ("bob", "cid"):
        await route.user(name)
    await route.http.post("/groups", json={"name": "team", "members": ["bob", "cid"]}, headers=ann)
    resp = await route.http.post("/groups/team/messages", json={"body": "soon", "delay_ms": 100}, headers=ann)
    answer = resp.json()
    assert answer["recipients"] == 2 and answer["status"] == "scheduled" and answer["seq"] is None
    for user in ("bob", "cid"):
        [msg] = await eventually(lambda u=user: inbox(route, u), timeout=3)
        assert msg["id"] == answer["id"] and msg["group"] == "team" and msg["to"] == user


async def test_two_replicas_fire_each_exactly_once(make_route: MakeRoute) -> None:
    first = await make_route()
    second = await make_route(with_node=False)
    ann = await first.user("ann")
    await first.user("bob")
    ids = []
    for i in range(30):
        replica = first if i % 2 else second
        resp = await replica.http.post(
            "/messages", json={"to": "bob", "body": str(i), "delay_ms": 50 + i * 5}, headers=ann
        )
        ids.append(resp.json()["id"])

    async def all_fired() -> bool:
        return (
            await first.ctx.redis.zcard(first.ctx.keys.delayed) == 0 and len(await inbox(first, "bob")) >= 30
        )

    await eventually(all_fired, timeout=5)
    stored = await inbox(first, "bob")
    assert sorted(m["id"] for m in stored) == sorted(ids)
    assert [m["seq"] for m in stored] == list(range(1, 31))


async def test_crashed_claimer_only_delays(route: RouteUnderTest) -> None:
    """A replica that claimed a job and died (before or after storing it) delays it by its lease;
    then another fires it, and it is stored once. Nothing lives in memory: a restart is the same."""
    ctx = route.ctx
    job_ids = []
    for body in ("lost-before-store", "lost-after-store"):
        job = {
            "id": f"job-{body}",
            "kind": "p2p",
            "from": "ann",
            "to": "bob",
            "body": body,
            "due": int(time.time() * 1000),
        }
        job_ids.append(job["id"])
        await ctx.redis.zadd(ctx.keys.delayed, {msgpack.packb(job): job["due"] + 60_000})
    # the dead replica's state: one job stored already (same idempotency scope as the scheduler uses)
    await ctx.sender.direct(
        sender="ann",
        to="bob",
        body="lost-after-store",
        msg_id="job-lost-after-store",
        idem_scope="delayed:job-lost-after-store",
        token=None,
    )
    # its lease ends now
    for raw in await ctx.redis.zrange(ctx.keys.delayed, 0, -1):
        await ctx.redis.zadd(ctx.keys.delayed, {raw: 0}, xx=True)
    await eventually(lambda: _zero(ctx), timeout=3)
    assert sorted(m["id"] for m in await inbox(route, "bob")) == sorted(job_ids)


async def _zero(ctx) -> bool:
    return await ctx.redis.zcard(ctx.keys.delayed) == 0
