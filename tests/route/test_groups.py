"""Groups: create, members, list, fan-out (own seq per member, one publish per node)."""

from __future__ import annotations

from shared.inbox import read_after
from shared.settings import RateLimit
from tests.harness import envelope
from tests.route.conftest import RouteUnderTest, next_payload, node_id, settle


async def test_create_list_and_members(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    await route.user("cid")
    resp = await route.http.post("/groups", json={"name": "team", "members": ["bob", "bob"]}, headers=ann)
    assert resp.status_code == 201
    assert resp.json() == {"name": "team", "owner": "ann", "members": ["ann", "bob"]}
    for taken in ("team", "TEAM", "System", "everyone"):
        envelope(
            await route.http.post("/groups", json={"name": taken, "members": []}, headers=bob),
            409,
            "group_exists",
        )
    envelope(
        await route.http.post("/groups", json={"name": "t2", "members": ["zed"]}, headers=ann),
        404,
        "unknown_user",
    )
    envelope(await route.http.post("/groups", json={"name": "bad name"}, headers=ann), 422, "invalid_request")
    resp = await route.http.post("/groups/team/members", json={"add": ["cid"]}, headers=ann)
    assert resp.json() == {"name": "team", "owner": "ann", "members": ["ann", "bob", "cid"]}
    envelope(
        await route.http.post("/groups/nope/members", json={"add": ["bob"]}, headers=ann),
        404,
        "unknown_group",
    )
    envelope(
        await route.http.post("/groups/team/members", json={"add": ["zed"]}, headers=ann), 404, "unknown_user"
    )
    assert (await route.http.get("/groups", headers=bob)).json() == {
        "groups": [{"name": "team", "owner": "ann", "members": ["ann", "bob", "cid"]}]
    }


async def test_only_the_owner_changes_members(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    cid = await route.user("cid")
    await route.user("dan")
    await route.http.post("/groups", json={"name": "team", "members": ["bob", "cid"]}, headers=ann)
    members = "/groups/team/members"
    for change in ({"remove": ["ann"]}, {"add": ["dan"]}, {"remove": ["cid"]}, {"owner": "bob"}):
        envelope(await route.http.post(members, json=change, headers=bob), 403, "not_owner")
    # the owner stays a member until it hands the group over
    envelope(await route.http.post(members, json={"remove": ["ann"]}, headers=ann), 422, "invalid_request")
    envelope(await route.http.post(members, json={"owner": "dan"}, headers=ann), 422, "invalid_request")
    # any member leaves
    resp = await route.http.post(members, json={"remove": ["cid"]}, headers=cid)
    assert resp.status_code == 200 and resp.json()["members"] == ["ann", "bob"]
    envelope(await route.http.post(members, json={"add": ["cid"]}, headers=cid), 403, "not_member")
    # hand over and leave in one call; the new owner rules from now on
    resp = await route.http.post(members, json={"owner": "bob", "remove": ["ann"]}, headers=ann)
    assert resp.json() == {"name": "team", "owner": "bob", "members": ["bob"]}
    assert (await route.http.post(members, json={"add": ["dan"]}, headers=bob)).status_code == 200
    assert (await route.http.get("/groups", headers=ann)).json() == {"groups": []}


async def test_group_size_limit(make_route) -> None:
    route = await make_route(group_max=2)
    ann = await route.user("ann")
    for name in ("bob", "cid"):
        await route.user(name)
    envelope(
        await route.http.post("/groups", json={"name": "g", "members": ["bob", "cid"]}, headers=ann),
        422,
        "invalid_request",
    )
    assert (
        await route.http.post("/groups", json={"name": "g", "members": ["bob"]}, headers=ann)
    ).status_code == 201
    envelope(
        await route.http.post("/groups/g/members", json={"add": ["cid"]}, headers=ann), 422, "invalid_request"
    )


async def test_group_message_fan_out(route: RouteUnderTest, nc) -> None:
    other = node_id()
    await route.add_node(other)
    ann = await route.user("ann")
    for name in ("bob", "cid", "dan", "eve"):
        await route.user(name)
    await route.connect("ann")
    await route.connect("bob")
    await route.connect("cid")
    await route.connect("dan", node=other)
    # eve offline; bob already has one message so his group seq is 2
    await route.http.post("/messages", json={"to": "bob", "body": "first"}, headers=ann)
    await route.http.post(
        "/groups", json={"name": "team", "members": ["bob", "cid", "dan", "eve"]}, headers=ann
    )
    await settle(route, nc)  # the first message (and its carbon) went out before these subscribe
    sub_a = await nc.subscribe(f"cim.node.{route.node}")
    sub_b = await nc.subscribe(f"cim.node.{other}")
    await nc.flush()
    resp = await route.http.post("/groups/team/messages", json={"body": "hey team"}, headers=ann)
    assert resp.status_code == 202 and resp.json()["recipients"] == 4
    msg_id = resp.json()["id"]
    items_a = (await next_payload(sub_a))["items"]
    items_b = (await next_payload(sub_b))["items"]
    carbon = [i for i in items_a if i.get("carbon")]
    assert [(i["from"], i["to"], i["seq"]) for i in carbon] == [("ann", "team", 2)]  # ann's devices
    items_a = [i for i in items_a if not i.get("carbon")]
    assert sorted((i["to"], i["seq"]) for i in items_a) == [("bob", 2), ("cid", 1)]
    assert [(i["to"], i["seq"]) for i in items_b] == [("dan", 1)]
    for item in items_a + items_b:
        assert (
            item["kind"] == "group"
            and item["group"] == "team"
            and item["from"] == "ann"
            and item["id"] == msg_id
        )
    await settle(route, nc)
    assert sub_a.pending_msgs == 0 and sub_b.pending_msgs == 0
    [stored] = await read_after(route.ctx.redis, route.ctx.keys, "eve", 0)
    assert stored["to"] == "eve" and stored["seq"] == 1 and stored["group"] == "team"
    # the sender does not get it back, only the carbons of its sends (p2p, then group)
    own = await read_after(route.ctx.redis, route.ctx.keys, "ann", 0)
    assert [(m["kind"], m["to"], m["carbon"]) for m in own] == [("p2p", "bob", True), ("group", "team", True)]


async def test_group_message_errors_and_idempotency(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    await route.user("cid")
    await route.http.post("/groups", json={"name": "team", "members": ["cid"]}, headers=ann)
    envelope(
        await route.http.post("/groups/team/messages", json={"body": "x"}, headers=bob), 403, "not_member"
    )
    envelope(
        await route.http.post("/groups/none/messages", json={"body": "x"}, headers=ann), 404, "unknown_group"
    )
    msg = {"body": "once", "client_msg_id": "g-1"}
    first = (await route.http.post("/groups/team/messages", json=msg, headers=ann)).json()
    again = (await route.http.post("/groups/team/messages", json=msg, headers=ann)).json()
    assert first == again == {"id": first["id"], "recipients": 1}
    assert len(await read_after(route.ctx.redis, route.ctx.keys, "cid", 0)) == 1


async def test_group_send_is_rate_limited(make_route) -> None:
    route = await make_route(rate_limit=RateLimit(0.01, 1))
    ann = await route.user("ann")
    await route.user("bob")
    await route.http.post("/groups", json={"name": "team", "members": ["bob"]}, headers=ann)
    assert (
        await route.http.post("/groups/team/messages", json={"body": "a"}, headers=ann)
    ).status_code == 202
    envelope(
        await route.http.post("/groups/team/messages", json={"body": "b"}, headers=ann), 429, "rate_limited"
    )
