"""v0.2 calls on the route: /read (group cursors), /typing to a group, edits of group
messages, the edit window, bad input, idempotent carbons; what lands in the inboxes (real
Redis and NATS)."""

from __future__ import annotations

import msgpack

from shared.inbox import read_after
from tests.harness import envelope
from tests.route.conftest import MakeRoute, RouteUnderTest, next_payload, settle


async def _team(route: RouteUnderTest) -> dict[str, dict[str, str]]:
    auth = {name: await route.user(name) for name in ("ann", "bob", "cid")}
    resp = await route.http.post(
        "/groups", json={"name": "team", "members": ["bob", "cid"]}, headers=auth["ann"]
    )
    assert resp.status_code == 201
    return auth


async def test_group_read_cursors(route: RouteUnderTest) -> None:
    auth = await _team(route)
    await route.user("zed")
    assert (
        await route.http.post("/read", json={"group": "team", "ts": 5}, headers=auth["bob"])
    ).status_code == 204
    assert (
        await route.http.post("/read", json={"group": "team", "ts": 9}, headers=auth["ann"])
    ).status_code == 204
    resp = await route.http.get("/read", params={"group": "team"}, headers=auth["cid"])
    assert resp.status_code == 200 and resp.json() == {"reads": {"bob": 5, "ann": 9}}
    envelope(
        await route.http.get("/read", params={"group": "team"}, headers=route.auth("zed")), 403, "not_member"
    )
    envelope(
        await route.http.get("/read", params={"group": "nope"}, headers=auth["ann"]), 404, "unknown_group"
    )
    # group reads keep cursors only: no receipt in anyone's inbox
    for user in ("ann", "bob", "cid"):
        assert await read_after(route.ctx.redis, route.ctx.keys, user, 0) == []


async def test_bad_read_and_typing_requests(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    for body in (
        {"ts": 1},
        {"with": "bob", "group": "team", "ts": 1},
        {"with": "bob"},
        {"with": "b b", "ts": 1},
    ):
        envelope(await route.http.post("/read", json=body, headers=ann), 422, "invalid_request")
    envelope(await route.http.post("/read", json={"with": "zed", "ts": 1}, headers=ann), 404, "unknown_user")
    envelope(await route.http.post("/typing", json={}, headers=ann), 422, "invalid_request")
    envelope(await route.http.post("/typing", json={"to": "zed"}, headers=ann), 404, "unknown_user")
    envelope(await route.http.post("/typing", json={"group": "team"}, headers=ann), 404, "unknown_group")
    envelope(await route.http.post("/read", json={"with": "ann", "ts": 1}), 401, "unauthorized")


async def test_typing_in_a_group_reaches_the_online_members(route: RouteUnderTest, nc) -> None:
    auth = await _team(route)
    await route.connect("bob")
    await route.connect("cid", device="phone")
    await settle(route, nc)
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    assert (await route.http.post("/typing", json={"group": "team"}, headers=auth["ann"])).status_code == 204
    items = (await next_payload(sub))["items"]
    assert sorted((i["to"], i["kind"], i["seq"], i["group"]) for i in items) == [
        ("bob", "typing", 0, "team"),
        ("cid", "typing", 0, "team"),
    ]
    assert (await route.http.post("/typing", json={"group": "team"}, headers=auth["ann"])).status_code == 204
    await settle(route, nc)
    assert sub.pending_msgs == 0  # throttled: one a second per pair


async def test_edit_of_a_group_message_reaches_every_member(route: RouteUnderTest) -> None:
    auth = await _team(route)
    sent = (
        await route.http.post("/groups/team/messages", json={"body": "lunch at 1"}, headers=auth["ann"])
    ).json()
    resp = await route.http.patch(f"/messages/{sent['id']}", json={"body": "lunch at 2"}, headers=auth["ann"])
    assert resp.status_code == 204
    envelope(
        await route.http.patch(f"/messages/{sent['id']}", json={"body": "x"}, headers=auth["bob"]),
        403,
        "not_sender",
    )
    envelope(
        await route.http.patch(f"/messages/{sent['id']}", json={"body": ""}, headers=auth["ann"]),
        422,
        "invalid_request",
    )
    for user in ("bob", "cid"):
        edit = (await read_after(route.ctx.redis, route.ctx.keys, user, 0))[-1]
        assert (edit["kind"], edit["ref"], edit["body"], edit["group"], edit["to"]) == (
            "edit",
            sent["id"],
            "lunch at 2",
            "team",
            user,
        )
    own = await read_after(route.ctx.redis, route.ctx.keys, "ann", 0)
    assert [(m["kind"], m["carbon"], m["to"]) for m in own] == [
        ("group", True, "team"),
        ("edit", True, "team"),
    ]
    await route.ctx.history.flush(timeout=5)
    page = (await route.http.get("/history", params={"group": "team"}, headers=auth["cid"])).json()[
        "messages"
    ]
    assert [(m["id"], m["body"]) for m in page] == [(sent["id"], "lunch at 2")] and page[0]["edited_ts"] > 0


async def test_too_late_to_edit(make_route: MakeRoute) -> None:
    route = await make_route(edit_window_s=1)
    ann = await route.user("ann")
    await route.user("bob")
    sent = (await route.http.post("/messages", json={"to": "bob", "body": "hi"}, headers=ann)).json()
    # The send's reference says when it was sent: make that 5 s ago (past the 1 s window).
    key = route.ctx.keys.message_ref(sent["id"])
    ref = msgpack.unpackb(await route.ctx.redis.get(key), raw=False)
    await route.ctx.redis.set(key, msgpack.packb({**ref, "ts": sent["ts"] - 5000}), keepttl=True)
    envelope(await route.http.delete(f"/messages/{sent['id']}", headers=ann), 409, "too_late")
    envelope(
        await route.http.patch(f"/messages/{sent['id']}", json={"body": "x"}, headers=ann), 409, "too_late"
    )
    assert [m["kind"] for m in await read_after(route.ctx.redis, route.ctx.keys, "bob", 0)] == ["p2p"]


async def test_a_retried_send_stores_neither_copy_twice(route: RouteUnderTest) -> None:
    """client_msg_id covers the carbon too: p2p and group sends retried store nothing new."""
    auth = await _team(route)
    ann = auth["ann"]
    for _ in range(2):
        p2p = await route.http.post(
            "/messages", json={"to": "bob", "body": "once", "client_msg_id": "k1"}, headers=ann
        )
        group = await route.http.post(
            "/groups/team/messages", json={"body": "once", "client_msg_id": "k2"}, headers=ann
        )
        assert p2p.status_code == 202 and group.status_code == 202
    own = await read_after(route.ctx.redis, route.ctx.keys, "ann", 0)
    assert [(m["seq"], m["kind"], m["to"], m["carbon"]) for m in own] == [
        (1, "p2p", "bob", True),
        (2, "group", "team", True),
    ]
    assert [m["kind"] for m in await read_after(route.ctx.redis, route.ctx.keys, "bob", 0)] == [
        "p2p",
        "group",
    ]
