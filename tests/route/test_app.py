"""The app shell: error envelope, health, readiness, metrics, OpenAPI, users and account."""

from __future__ import annotations

import pytest

from cim_cli.ops.services import free_port
from tests.harness import envelope, eventually
from tests.route.conftest import PASSWORD, MakeRoute, RouteUnderTest, next_payload


async def test_healthz_readyz_metrics_openapi(route: RouteUnderTest) -> None:
    assert (await route.root.get("/healthz")).json() == {"status": "ok"}
    assert (await route.root.get("/readyz")).status_code == 200
    spec = (await route.root.get("/openapi.json")).json()
    assert "/api/v1/messages" in spec["paths"] and "/api/v1/groups/{name}/messages" in spec["paths"]
    assert (await route.root.get("/docs")).status_code == 200
    await route.http.post("/users", json={"username": "x", "password": "short"})
    text = (await route.root.get("/metrics")).text
    assert 'cim_route_requests_total{method="POST",route="/api/v1/users",status="422"} 1.0' in text
    assert "# TYPE cim_route_send_seconds histogram" in text


async def test_readyz_without_nodes(make_route: MakeRoute) -> None:
    route = await make_route(with_node=False)
    envelope(await route.root.get("/readyz"), 503, "unavailable")
    await route.add_node("n-late")
    assert (await route.root.get("/readyz")).status_code == 200


async def test_error_envelopes(route: RouteUnderTest) -> None:
    envelope(await route.http.get("/nope"), 404, "not_found")
    envelope(await route.http.delete("/users"), 405, "method_not_allowed")
    envelope(
        await route.http.post("/users", content=b"{not json", headers={"content-type": "application/json"}),
        422,
        "invalid_request",
    )
    envelope(await route.http.post("/users", json=["a"]), 422, "invalid_request")
    envelope(
        await route.http.post("/users", json={"username": "bad name", "password": PASSWORD}),
        422,
        "invalid_request",
    )
    envelope(
        await route.http.post("/users", json={"username": "a" * 33, "password": PASSWORD}),
        422,
        "invalid_request",
    )
    envelope(
        await route.http.post("/users", json={"username": "ok", "password": "x" * 129}),
        422,
        "invalid_request",
    )
    envelope(await route.http.get("/me"), 401, "unauthorized")
    envelope(await route.http.get("/me", headers={"Authorization": "Bearer junk"}), 401, "unauthorized")
    envelope(await route.http.get("/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    envelope(await route.http.get("/nodes"), 401, "bad_api_key")
    envelope(await route.http.get("/nodes", headers={"X-API-Key": "wrong"}), 401, "bad_api_key")


async def test_redis_down_is_503(make_route: MakeRoute) -> None:
    route = await make_route(with_node=False, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    envelope(
        await route.http.post("/users", json={"username": "ann", "password": PASSWORD}), 503, "unavailable"
    )
    envelope(
        await route.http.post("/login", json={"username": "ann", "password": PASSWORD}), 503, "unavailable"
    )
    envelope(await route.root.get("/readyz"), 503, "unavailable")
    assert "cim_route_redis_errors_total 2.0" in (await route.root.get("/metrics")).text


async def test_nats_unreachable_at_start_fails_fast(make_route: MakeRoute) -> None:
    with pytest.raises(TimeoutError):
        await make_route(with_node=False, nats_url=f"nats://127.0.0.1:{free_port()}", startup_timeout_s=0.5)


async def test_register_login_me_logout(route: RouteUnderTest) -> None:
    resp = await route.http.post("/users", json={"username": "ann.b-1_", "password": PASSWORD})
    assert resp.status_code == 201 and resp.json() == {"username": "ann.b-1_"}
    envelope(
        await route.http.post("/users", json={"username": "ann.b-1_", "password": PASSWORD}),
        409,
        "username_taken",
    )
    envelope(
        await route.http.post("/login", json={"username": "ann.b-1_", "password": "wrong-password"}),
        401,
        "bad_credentials",
    )
    envelope(
        await route.http.post("/login", json={"username": "nobody", "password": PASSWORD}),
        401,
        "bad_credentials",
    )
    resp = await route.http.post("/login", json={"username": "ann.b-1_", "password": PASSWORD})
    body = resp.json()
    assert resp.status_code == 200 and body["username"] == "ann.b-1_"
    assert body["node"] == {"id": route.node, "host": "127.0.0.1", "port": 9000, "ws_url": None, "tls": False}
    assert body["expires_at"] > 0
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert (await route.http.get("/me", headers=headers)).json() == {
        "username": "ann.b-1_",
        "online": False,
        "node": None,
        "devices": [],
    }
    await route.connect("ann.b-1_")
    assert (await route.http.get("/me", headers=headers)).json()["node"] == route.node
    assert (await route.http.post("/logout", headers=headers)).status_code == 204
    envelope(await route.http.get("/me", headers=headers), 401, "unauthorized")


async def test_logout_kicks_the_session(route: RouteUnderTest, nc) -> None:
    headers = await route.user("kim")
    await route.connect("kim", conn="conn-7")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    assert (await route.http.post("/logout", headers=headers)).status_code == 204
    assert await next_payload(sub) == {
        "k": "kick",
        "user": "kim",
        "conn": "conn-7",
        "reason": "logout",
        "device": "default",
    }


async def test_login_without_nodes(make_route: MakeRoute) -> None:
    route = await make_route(with_node=False)
    await route.http.post("/users", json={"username": "ann", "password": PASSWORD})
    envelope(await route.http.post("/login", json={"username": "ann", "password": PASSWORD}), 503, "no_nodes")


async def test_users_online(route: RouteUnderTest) -> None:
    headers = await route.user("alice")
    for name in ("alice", "albert", "bob", "al"):
        if name != "alice":
            await route.http.post("/users", json={"username": name, "password": PASSWORD})
        await route.connect(name)
    resp = await route.http.get("/users/online", headers=headers)
    assert resp.json() == {"users": ["al", "albert", "alice", "bob"], "total": 4}
    resp = await route.http.get("/users/online", params={"prefix": "al", "limit": 2}, headers=headers)
    assert resp.json() == {"users": ["al", "albert"], "total": 3}
    envelope(
        await route.http.get("/users/online", params={"limit": 0}, headers=headers), 422, "invalid_request"
    )
    # operators' tools read it with an API key; a wrong key is refused
    resp = await route.http.get("/users/online", headers=route.admin)
    assert resp.json()["total"] == 4
    envelope(await route.http.get("/users/online", headers={"X-API-Key": "nope"}), 401, "bad_api_key")
    envelope(await route.http.get("/users/online"), 401, "unauthorized")


async def test_connect_gives_a_token_holder_a_node(route: RouteUnderTest) -> None:
    headers = await route.user("gus")
    resp = await route.http.post("/connect", headers=headers)
    assert resp.status_code == 200
    assert resp.json() == {
        "node": {"id": route.node, "host": "127.0.0.1", "port": 9000, "ws_url": None, "tls": False}
    }
    envelope(await route.http.post("/connect"), 401, "unauthorized")
    await route.registry.withdraw(route.node)

    async def no_nodes() -> bool:
        return (await route.http.post("/connect", headers=headers)).status_code == 503

    await eventually(no_nodes, timeout=5, what="the node view empty")
    envelope(await route.http.post("/connect", headers=headers), 503, "no_nodes")
    await route.http.post("/logout", headers=headers)
    envelope(await route.http.post("/connect", headers=headers), 401, "unauthorized")
