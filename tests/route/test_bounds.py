"""Names (case-insensitive, reserved), history bounds, a group's history from join time,
delayed group sends checked at fire time, and sends that pay per recipient."""

from __future__ import annotations

import pytest

from shared.inbox import read_after
from shared.settings import RateLimit
from tests.harness import envelope, eventually
from tests.route.conftest import PASSWORD, MakeRoute, RouteUnderTest


async def register(route: RouteUnderTest, name: str) -> int:
    return (await route.http.post("/users", json={"username": name, "password": PASSWORD})).status_code


async def test_usernames_are_unique_without_regard_to_case(route: RouteUnderTest) -> None:
    assert await register(route, "bob") == 201
    for name in ("Bob", "BOB", "system", "System", "admin", "root", "all", "everyone", "CIM"):
        resp = await route.http.post("/users", json={"username": name, "password": PASSWORD})
        envelope(resp, 409, "username_taken")
    assert await register(route, "z_bob") == 201
    envelope(
        await route.http.post("/users", json={"username": "Z_Bob", "password": PASSWORD}),
        409,
        "username_taken",
    )


@pytest.mark.parametrize("before", ["1e30", str(2**53 + 1), "-1", "9" * 40])
async def test_before_out_of_range_is_422(route: RouteUnderTest, before: str) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    resp = await route.http.get("/history", params={"with": "bob", "before": before}, headers=ann)
    envelope(resp, 422, "invalid_request")


async def test_history_scan_is_bounded_and_says_more(make_route: MakeRoute) -> None:
    route = await make_route(history_scan=30, history_max=50, rate_limit=RateLimit(0, 0))
    ann = await route.user("ann")
    await route.user("bob")
    for i in range(60):
        body = "needle" if i == 0 else f"hay {i}"
        await route.http.post("/messages", json={"to": "bob", "body": body}, headers=ann)
    key = route.ctx.keys.dm_history("ann", "bob")
    assert await route.ctx.redis.xlen(key) == 50  # CIM_HISTORY_MAX
    params = {"with": "bob", "q": "needle"}
    page = (await route.http.get("/history", params=params, headers=ann)).json()
    assert page == {"messages": [], "more": True}  # scanned 30 of 50, the needle is gone anyway
    page = (await route.http.get("/history", params={"with": "bob", "q": "hay 59"}, headers=ann)).json()
    assert [m["body"] for m in page["messages"]] == ["hay 59"] and page["more"] is True
    page = (await route.http.get("/history", params={"with": "bob", "limit": 5}, headers=ann)).json()
    assert len(page["messages"]) == 5 and page["more"] is True
    oldest = page["messages"][-1]["ts"]
    rest = (await route.http.get("/history", params={"with": "bob", "before": oldest}, headers=ann)).json()
    # the scan of 30 starts at the newest entry that can be older than ``before``
    assert 0 < len(rest["messages"]) <= 25 and rest["more"] is True
    assert all(m["ts"] < oldest for m in rest["messages"])


async def test_short_history_says_no_more(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    await route.http.post("/messages", json={"to": "bob", "body": "only"}, headers=ann)
    page = (await route.http.get("/history", params={"with": "bob"}, headers=ann)).json()
    assert [m["body"] for m in page["messages"]] == ["only"] and page["more"] is False


async def test_a_member_sees_group_history_from_joining(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    await route.user("cid")
    await route.http.post("/groups", json={"name": "team", "members": ["cid"]}, headers=ann)
    await route.http.post("/groups/team/messages", json={"body": "before bob"}, headers=ann)
    await route.ctx.history.flush(5)
    await route.http.post("/groups/team/members", json={"add": ["bob"]}, headers=ann)
    await route.http.post("/groups/team/messages", json={"body": "after bob"}, headers=ann)
    await route.ctx.history.flush(5)
    seen = (await route.http.get("/history", params={"group": "team"}, headers=bob)).json()
    assert [m["body"] for m in seen["messages"]] == ["after bob"]
    seen = (await route.http.get("/history", params={"group": "team"}, headers=ann)).json()
    assert [m["body"] for m in seen["messages"]] == ["after bob", "before bob"]


async def test_delayed_group_message_of_a_sender_who_left_is_dropped(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    await route.user("cid")
    await route.http.post("/groups", json={"name": "team", "members": ["bob", "cid"]}, headers=ann)
    resp = await route.http.post("/groups/team/messages", json={"body": "late", "delay_ms": 100}, headers=bob)
    assert resp.status_code == 202
    await route.http.post("/groups/team/members", json={"remove": ["bob"]}, headers=bob)

    async def gone() -> bool:
        return await route.ctx.redis.zcard(route.ctx.keys.delayed) == 0

    await eventually(gone, timeout=5, what="the job handled")
    assert await read_after(route.ctx.redis, route.ctx.keys, "cid", 0) == []
    assert "cim_route_delayed_dropped_total 1.0" in (await route.root.get("/metrics")).text


async def test_group_and_push_sends_pay_per_recipient(make_route: MakeRoute) -> None:
    route = await make_route(rate_limit=RateLimit(0.01, 5))
    ann = await route.user("ann")
    for name in ("bob", "cid", "dan"):
        await route.user(name)
    await route.http.post("/groups", json={"name": "team", "members": ["bob", "cid", "dan"]}, headers=ann)
    send = {"body": "hi"}
    assert (await route.http.post("/groups/team/messages", json=send, headers=ann)).status_code == 202
    # 3 recipients took 3 of the 5 tokens: the next group send cannot pay, one p2p can
    envelope(await route.http.post("/groups/team/messages", json=send, headers=ann), 429, "rate_limited")
    assert (
        await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=ann)
    ).status_code == 202
    push = {"to": ["bob", "cid", "dan"], "body": "p"}
    assert (await route.http.post("/push", json=push, headers=route.admin)).status_code == 202
    envelope(await route.http.post("/push", json=push, headers=route.admin), 429, "rate_limited")


async def test_a_group_bigger_than_the_burst_is_sent_once_then_waits(make_route: MakeRoute) -> None:
    route = await make_route(rate_limit=RateLimit(0.01, 2))
    ann = await route.user("ann")
    for name in ("bob", "cid", "dan"):
        await route.user(name)
    await route.http.post("/groups", json={"name": "team", "members": ["bob", "cid", "dan"]}, headers=ann)
    assert (
        await route.http.post("/groups/team/messages", json={"body": "a"}, headers=ann)
    ).status_code == 202
    refused = await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=ann)
    envelope(refused, 429, "rate_limited")  # in debt: 2 - 3 = -1 token
