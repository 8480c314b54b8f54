"""Server-side calls: /push, /nodes, drain, DELETE /sessions."""

from __future__ import annotations

from shared.inbox import read_after
from shared.keys import bucket
from shared.registry import NodeState
from tests.harness import envelope, eventually
from tests.route.conftest import PASSWORD, RouteUnderTest, next_payload, node_id, settle


async def test_push_to_list_is_stored(route: RouteUnderTest, nc) -> None:
    for name in ("bob", "cid"):
        await route.user(name)
    await route.connect("bob")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    msg = {"to": ["bob", "cid"], "body": "maintenance at 5", "client_msg_id": "p-1"}
    envelope(await route.http.post("/push", json=msg), 401, "bad_api_key")
    envelope(await route.http.post("/push", json=msg, headers={"X-API-Key": "nope"}), 401, "bad_api_key")
    resp = await route.http.post("/push", json=msg, headers=route.admin)
    assert resp.status_code == 202 and resp.json()["recipients"] == 2
    assert (await route.http.post("/push", json=msg, headers=route.admin)).json() == resp.json()
    [item] = (await next_payload(sub))["items"]
    assert (item["kind"], item["from"], item["to"], item["seq"]) == ("push", "system", "bob", 1)
    [stored] = await read_after(route.ctx.redis, route.ctx.keys, "cid", 0)
    assert stored["kind"] == "push" and stored["id"] == resp.json()["id"]
    await settle(route, nc)
    assert sub.pending_msgs == 0
    envelope(
        await route.http.post("/push", json={**msg, "to": ["zed"]}, headers=route.admin), 404, "unknown_user"
    )
    envelope(
        await route.http.post("/push", json={**msg, "to": []}, headers=route.admin), 422, "invalid_request"
    )
    envelope(
        await route.http.post("/push", json={**msg, "to": "bob"}, headers=route.admin), 422, "invalid_request"
    )


async def test_push_to_everyone_online(route: RouteUnderTest, nc) -> None:
    for name in ("bob", "cid"):
        await route.user(name)
        await route.connect(name)
    sub = await nc.subscribe("cim.broadcast")
    await nc.flush()
    resp = await route.http.post("/push", json={"to": "*", "body": "hi all"}, headers=route.admin)
    assert resp.json()["recipients"] == 2
    payload = await next_payload(sub)
    assert payload["exclude"] is None
    assert (payload["msg"]["kind"], payload["msg"]["from"], payload["msg"]["seq"]) == ("push", "system", 0)
    assert await read_after(route.ctx.redis, route.ctx.keys, "bob", 0) == []


async def test_nodes_and_drain(route: RouteUnderTest) -> None:
    other = node_id()
    await route.add_node(other, connections=3, started_at=1234)
    nodes = (await route.http.get("/nodes", headers=route.admin)).json()
    assert {n["id"] for n in nodes} == {route.node, other}
    assert next(n for n in nodes if n["id"] == other) == {
        "id": other,
        "host": "127.0.0.1",
        "port": 9000,
        "connections": 3,
        "state": "up",
        "started_at": 1234,
        "metrics_port": None,
        "ws_url": None,
    }
    # on the route's own connection (NATS echoes a client's publishes to its subscriptions)
    sub = await route.ctx.nats.subscribe(f"cim.node.{other}")
    await route.ctx.nats.flush(timeout=2)
    resp = await route.http.post(f"/nodes/{other}/drain", headers=route.admin)
    assert resp.status_code == 202
    assert await next_payload(sub) == {"k": "drain"}
    nodes = {n["id"]: n for n in (await route.http.get("/nodes", headers=route.admin)).json()}
    assert nodes[other]["state"] == NodeState.DRAINING.value
    await route.http.post("/users", json={"username": "ann", "password": PASSWORD})
    for _ in range(6):  # round robin would alternate: the drained node is never handed out
        resp = await route.http.post("/login", json={"username": "ann", "password": PASSWORD})
        assert resp.json()["node"]["id"] == route.node
    envelope(await route.http.post("/nodes/n-none/drain", headers=route.admin), 404, "unknown_node")
    envelope(await route.http.post("/nodes/BAD_ID/drain", headers=route.admin), 422, "invalid_request")
    envelope(await route.http.post(f"/nodes/{other}/drain"), 401, "bad_api_key")


async def test_node_that_leaves_is_swept_and_not_handed_out(route: RouteUnderTest) -> None:
    other = node_id()
    await route.add_node(other)
    await route.user("bob")
    await route.connect("bob", node=other)
    await route.registry.withdraw(other)

    async def swept() -> bool:
        return not await route.ctx.redis.exists(route.ctx.keys.session("bob"))

    await eventually(swept, timeout=3)
    assert [n.id for n in route.ctx.view.accepting()] == [route.node]
    assert await route.ctx.redis.zscore(route.ctx.keys.online(bucket("bob")), "bob") is None


async def test_delete_session(route: RouteUnderTest, nc) -> None:
    await route.user("bob")
    await route.connect("bob", conn="c-9")
    await route.connect("bob", conn="c-10", device="phone")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    envelope(await route.http.delete("/sessions/bob"), 401, "bad_api_key")
    assert (await route.http.delete("/sessions/bob", headers=route.admin)).status_code == 204
    kicks = [await next_payload(sub), await next_payload(sub)]  # every device
    assert kicks == [
        {"k": "kick", "user": "bob", "conn": "c-9", "reason": "revoked", "device": "default"},
        {"k": "kick", "user": "bob", "conn": "c-10", "reason": "revoked", "device": "phone"},
    ]
    assert await route.ctx.redis.exists(route.ctx.keys.session("bob")) == 0
    assert (
        await route.http.delete("/sessions/bob", headers=route.admin)
    ).status_code == 204  # offline: no-op
    envelope(await route.http.delete("/sessions/zed", headers=route.admin), 404, "unknown_user")
