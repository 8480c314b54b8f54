"""The route on a 3-master Redis Cluster (issue 11): every call works as on one Redis, each
script touching keys of one slot (the cluster client refuses a script whose keys span slots),
and the global views (who is online, totals, a node's sessions) read across the buckets."""

from __future__ import annotations

from nats.aio.client import Client as Nats

from shared import views
from shared.inbox import read_after
from shared.keys import bucket
from tests.harness import envelope, eventually
from tests.redis_cluster import RedisClusterRig
from tests.route.conftest import PASSWORD, MakeRoute, RouteUnderTest, next_payload, node_id, settle

MEMBERS = [f"m{i:02d}" for i in range(12)]  # spread over many buckets, so over the 3 masters


async def _on_cluster(make_route: MakeRoute, rig: RedisClusterRig) -> RouteUnderTest:
    route = await make_route(redis_url=rig.url)
    assert not route.ctx.sender.one_call  # send.lua is for one Redis only
    return route


async def _bodies(route: RouteUnderTest, user: str) -> list[tuple[str, bool]]:
    frames = await read_after(route.ctx.redis, route.ctx.keys, user, 0)
    return [(f["body"], bool(f.get("carbon"))) for f in frames]


async def test_register_login_p2p_history_and_retry(
    make_route: MakeRoute, redis_cluster: RedisClusterRig, nc: Nats
) -> None:
    route = await _on_cluster(make_route, redis_cluster)
    ann, _ = await route.user("ann"), await route.user("bob")
    envelope(
        await route.http.post("/users", json={"username": "ANN", "password": PASSWORD}), 409, "username_taken"
    )
    await route.connect("bob")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await settle(route, nc)
    msg = {"to": "bob", "body": "hi", "client_msg_id": "c-1"}
    first = await route.http.post("/messages", json=msg, headers=ann)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "delivered" and first.json()["seq"] == 1
    [item] = (await next_payload(sub))["items"]
    assert (item["to"], item["body"], item["seq"]) == ("bob", "hi", 1)
    again = await route.http.post("/messages", json=msg, headers=ann)
    assert again.json() == first.json()  # a retry stores nothing new
    assert await _bodies(route, "bob") == [("hi", False)]
    assert await _bodies(route, "ann") == [("hi", True)]  # the carbon, in the sender's slot
    page = (await route.http.get("/history", params={"with": "bob"}, headers=ann)).json()["messages"]
    assert [m["body"] for m in page] == ["hi"]
    edit = await route.http.patch(f"/messages/{first.json()['id']}", json={"body": "hey"}, headers=ann)
    assert edit.status_code == 204, edit.text  # the reference the cluster send wrote
    envelope(
        await route.http.post("/messages", json={"to": "zed", "body": "x"}, headers=ann), 404, "unknown_user"
    )
    await route.ctx.redis.script_flush()  # a lost script cache: loaded again on every master
    assert (
        await route.http.post("/messages", json={"to": "bob", "body": "2"}, headers=ann)
    ).status_code == 202


async def test_group_push_broadcast_and_delayed(
    make_route: MakeRoute, redis_cluster: RedisClusterRig
) -> None:
    route = await _on_cluster(make_route, redis_cluster)
    ann = await route.user("ann")
    for m in MEMBERS:
        await route.user(m)
    resp = await route.http.post("/groups", json={"name": "team", "members": MEMBERS}, headers=ann)
    assert resp.status_code == 201, resp.text
    resp = await route.http.post("/groups/team/messages", json={"body": "all"}, headers=ann)
    assert resp.status_code == 202 and resp.json()["recipients"] == len(MEMBERS)
    for m in MEMBERS:
        assert await _bodies(route, m) == [("all", False)]
    assert await _bodies(route, "ann") == [("all", True)]
    page = (await route.http.get("/history", params={"group": "team"}, headers=ann)).json()["messages"]
    assert [m["body"] for m in page] == ["all"]
    resp = await route.http.post("/push", json={"to": MEMBERS[:5], "body": "p"}, headers=route.admin)
    assert resp.status_code == 202 and resp.json()["recipients"] == 5
    assert await _bodies(route, MEMBERS[0]) == [("all", False), ("p", False)]
    for m in MEMBERS[:4]:
        await route.connect(m)
    resp = await route.http.post("/push", json={"to": "*", "body": "x"}, headers=route.admin)
    assert resp.json()["recipients"] == 4
    await route.connect("ann")
    assert (await route.http.post("/broadcast", json={"body": "b"}, headers=ann)).json()["recipients"] == 4

    later = await route.http.post(
        "/messages", json={"to": MEMBERS[11], "body": "later", "delay_ms": 50}, headers=ann
    )
    assert later.status_code == 202 and later.json()["status"] == "scheduled"

    async def fired() -> bool:
        return (
            await route.ctx.redis.zcard(route.ctx.keys.delayed) == 0
            and len(await _bodies(route, MEMBERS[11])) == 2
        )

    await eventually(fired, timeout=5, what="the delayed message fired")
    await route.ctx.scheduler.fire_due()
    assert await _bodies(route, MEMBERS[11]) == [("all", False), ("later", False)]  # once


async def test_online_prefix_and_totals_are_the_same_as_on_one_redis(
    make_route: MakeRoute, redis_cluster: RedisClusterRig
) -> None:
    one, cluster = await make_route(), await _on_cluster(make_route, redis_cluster)
    names = [*MEMBERS, "Mia", "max", "zoe", "m1x"]
    for route in (one, cluster):
        for name in names:
            await route.connect(name)
    await one.user("viewer")
    headers = {"X-API-Key": one.admin["X-API-Key"]}
    for params in ({}, {"prefix": "m"}, {"prefix": "m0", "limit": 3}, {"prefix": "m1"}, {"prefix": "q"}):
        a = (await one.http.get("/users/online", params=params, headers=headers)).json()
        b = (await cluster.http.get("/users/online", params=params, headers=headers)).json()
        assert a == b, params
    everyone = (await cluster.http.get("/users/online", headers=headers)).json()
    assert everyone["total"] == len(names) and everyone["users"] == sorted(names)
    assert len({bucket(n) for n in names}) > 1


async def test_kick_and_the_sweep_of_a_dead_node(
    make_route: MakeRoute, redis_cluster: RedisClusterRig
) -> None:
    route = await _on_cluster(make_route, redis_cluster)
    bob = await route.user("bob")
    await route.connect("bob", device="phone")
    assert (await route.http.delete("/sessions/bob", headers=route.admin)).status_code == 204
    assert not await route.ctx.redis.exists(route.ctx.keys.session("bob"))
    envelope(
        await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=bob), 401, "unauthorized"
    )

    dead = node_id()
    await route.add_node(dead)
    for m in MEMBERS:
        await route.connect(m, node=dead)
    assert len(await views.node_members(route.ctx.redis, route.ctx.keys, dead)) == len(MEMBERS)
    await route.registry.withdraw(dead)

    async def swept() -> bool:
        return await views.online_total(route.ctx.redis, route.ctx.keys) == 0

    await eventually(swept, timeout=5, what="the dead node's sessions swept")
    assert await views.node_members(route.ctx.redis, route.ctx.keys, dead) == []
    assert not await route.ctx.redis.exists(*(route.ctx.keys.session(m) for m in MEMBERS))
