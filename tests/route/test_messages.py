"""POST /messages and /broadcast: store, seq, delivery over NATS, idempotency, limits."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from cim_route import auth
from shared.inbox import read_after
from shared.settings import RateLimit
from tests.harness import envelope
from tests.route.conftest import MakeRoute, RouteUnderTest, next_payload, settle


async def test_offline_recipient_is_stored(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    resp = await route.http.post("/messages", json={"to": "bob", "body": "hi"}, headers=ann)
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    assert (
        answer["seq"] == 1 and answer["status"] == "stored" and set(answer) == {"id", "seq", "ts", "status"}
    )
    [frame] = await read_after(route.ctx.redis, route.ctx.keys, "bob", 0)
    assert frame == {
        "t": "msg",
        "id": answer["id"],
        "seq": 1,
        "kind": "p2p",
        "from": "ann",
        "to": "bob",
        "body": "hi",
        "ts": answer["ts"],
    }


async def test_online_recipient_gets_one_nats_message(route: RouteUnderTest, nc) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    await route.connect("bob")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    resp = await route.http.post("/messages", json={"to": "bob", "body": "héllo 👋"}, headers=ann)
    answer = resp.json()
    assert answer["status"] == "delivered"
    payload = await next_payload(sub)
    assert payload["k"] == "msgs"
    assert payload["items"] == [
        {
            "t": "msg",
            "id": answer["id"],
            "seq": 1,
            "kind": "p2p",
            "from": "ann",
            "to": "bob",
            "body": "héllo 👋",
            "ts": answer["ts"],
        }
    ]
    await settle(route, nc)
    assert sub.pending_msgs == 0


async def test_validation_and_limits(make_route: MakeRoute) -> None:
    route = await make_route(max_body=10, rate_limit=RateLimit(0.01, 2))
    ann = await route.user("ann")
    await route.user("bob")
    envelope(
        await route.http.post("/messages", json={"to": "nobody", "body": "x"}, headers=ann),
        404,
        "unknown_user",
    )
    envelope(
        await route.http.post("/messages", json={"to": "bob", "body": "é" * 6}, headers=ann), 413, "too_large"
    )
    envelope(await route.http.post("/messages", json={"to": "bob"}, headers=ann), 422, "invalid_request")
    envelope(
        await route.http.post("/messages", json={"to": "bob", "body": ""}, headers=ann),
        422,
        "invalid_request",
    )
    envelope(
        await route.http.post("/messages", json={"to": "bob", "body": "x", "delay_ms": -1}, headers=ann),
        422,
        "invalid_request",
    )
    envelope(await route.http.post("/messages", json={"to": "bob", "body": "x"}), 401, "unauthorized")
    # the unknown_user attempt spent a token too: one left of the burst of 2
    assert (
        await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=ann)
    ).status_code == 202
    resp = await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=ann)
    envelope(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["retry-after"]) <= 100
    assert "cim_route_rate_limited_total 1.0" in (await route.root.get("/metrics")).text


async def test_rate_limit_off(make_route: MakeRoute) -> None:
    route = await make_route(rate_limit=RateLimit(0, 0))
    ann = await route.user("ann")
    await route.user("bob")
    for _ in range(5):
        assert (
            await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=ann)
        ).status_code == 202


async def test_idempotent_retry(route: RouteUnderTest, nc) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    await route.connect("bob")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    msg = {"to": "bob", "body": "once", "client_msg_id": "m-1"}
    first = (await route.http.post("/messages", json=msg, headers=ann)).json()
    again = (await route.http.post("/messages", json=msg, headers=ann)).json()
    assert first == again and first["status"] == "delivered"
    other = (await route.http.post("/messages", json={**msg, "client_msg_id": "m-2"}, headers=ann)).json()
    assert other["seq"] == 2
    assert len(await read_after(route.ctx.redis, route.ctx.keys, "bob", 0)) == 2
    history = (await route.http.get("/history", params={"with": "bob"}, headers=ann)).json()["messages"]
    assert [m["id"] for m in history] == [other["id"], first["id"]]  # the retry wrote no entry
    await next_payload(sub)
    await next_payload(sub)
    await settle(route, nc)
    assert sub.pending_msgs == 0  # the retry published nothing


async def test_seq_gap_free_under_concurrent_sends(make_route: MakeRoute) -> None:
    route = await make_route()
    second = await make_route(with_node=False)
    senders = [await route.user(f"s{i}") for i in range(4)]
    await route.user("bob")
    second.tokens = route.tokens

    async def burst(i: int) -> list[int]:
        client = (route if i % 2 else second).http
        seqs = []
        for n in range(25):
            resp = await client.post("/messages", json={"to": "bob", "body": f"{i}-{n}"}, headers=senders[i])
            assert resp.status_code == 202, resp.text
            seqs.append(resp.json()["seq"])
        return seqs

    results = await asyncio.gather(*(burst(i) for i in range(4)))
    assert sorted(s for seqs in results for s in seqs) == list(range(1, 101))
    frames = await read_after(route.ctx.redis, route.ctx.keys, "bob", 0)
    assert [f["seq"] for f in frames] == list(range(1, 101))
    for seqs in results:  # each sender's messages are in its send order
        assert seqs == sorted(seqs)


async def test_broadcast_is_one_publish(route: RouteUnderTest, nc) -> None:
    ann = await route.user("ann")
    for name in ("bob", "cid"):
        await route.user(name)
        await route.connect(name)
    await route.connect("ann")
    sub = await nc.subscribe("cim.broadcast")
    await nc.flush()
    resp = await route.http.post("/broadcast", json={"body": "all"}, headers=ann)
    assert resp.status_code == 202
    answer = resp.json()
    assert answer["recipients"] == 2
    payload = await next_payload(sub)
    assert payload["k"] == "broadcast" and payload["exclude"] == "ann"
    assert payload["msg"]["id"] == answer["id"] and payload["msg"]["kind"] == "broadcast"
    assert payload["msg"]["seq"] == 0 and payload["msg"]["from"] == "ann" and payload["msg"]["body"] == "all"
    await settle(route, nc)
    assert sub.pending_msgs == 0
    envelope(await route.http.post("/broadcast", json={"body": 5}, headers=ann), 422, "invalid_request")


async def test_sends_with_a_revoked_token(route: RouteUnderTest) -> None:
    """The send calls check revocation in their first pipeline: still 401, and nothing sent."""
    ann = await route.user("ann")
    await route.user("bob")
    resp = await route.http.post("/groups", json={"name": "team", "members": ["bob"]}, headers=ann)
    assert resp.status_code == 201
    assert (await route.http.post("/logout", headers=ann)).status_code == 204
    for path, body in [
        ("/messages", {"to": "bob", "body": "x"}),
        ("/broadcast", {"body": "x"}),
        ("/groups/team/messages", {"body": "x"}),
    ]:
        resp = await route.http.post(path, json=body, headers=ann)
        envelope(resp, 401, "unauthorized")
        assert resp.json()["detail"] == "token revoked"
    assert await read_after(route.ctx.redis, route.ctx.keys, "bob", 0) == []


async def test_a_remembered_token_still_expires(
    route: RouteUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await route.user("ann")
    await route.user("bob")
    assert (await route.http.get("/me", headers=ann)).status_code == 200  # signature checked, cached
    later = time.time() + route.ctx.settings.token_ttl + 1
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: later))
    for resp in [
        await route.http.get("/me", headers=ann),
        await route.http.post("/messages", json={"to": "bob", "body": "x"}, headers=ann),
    ]:
        envelope(resp, 401, "unauthorized")
        assert resp.json()["detail"] == "token expired"


async def test_send_after_redis_lost_its_scripts(route: RouteUnderTest) -> None:
    """The send path runs its scripts (rate limit, store) without SCRIPT EXISTS; a Redis that
    lost them (restart, SCRIPT FLUSH) gets them again, and each message is stored once."""
    ann = await route.user("ann")
    await route.user("bob")
    for body in ("a", "b"):
        await route.ctx.redis.script_flush()
        resp = await route.http.post("/messages", json={"to": "bob", "body": body}, headers=ann)
        assert resp.status_code == 202, resp.text
    frames = await read_after(route.ctx.redis, route.ctx.keys, "bob", 0)
    assert [(f["seq"], f["body"]) for f in frames] == [(1, "a"), (2, "b")]


async def test_lean_and_fastapi_paths_answer_alike(route: RouteUnderTest) -> None:
    """A plain send is answered ahead of FastAPI; one it leaves to FastAPI (another content
    type) gets the same answer, and both count under the call's template in /metrics."""
    ann = await route.user("ann")
    await route.user("bob")
    lean = await route.http.post("/messages", json={"to": "bob", "body": "a"}, headers=ann)
    full = await route.http.post(
        "/messages",
        content=json.dumps({"to": "bob", "body": "b"}),
        headers={**ann, "Content-Type": "application/json; charset=utf-8"},
    )
    assert lean.status_code == full.status_code == 202
    assert lean.headers["content-type"] == full.headers["content-type"] == "application/json"
    assert set(lean.json()) == set(full.json()) == {"id", "seq", "ts", "status"}
    assert (lean.json()["seq"], full.json()["seq"]) == (1, 2)
    text = (await route.root.get("/metrics")).text
    assert 'cim_route_requests_total{method="POST",route="/api/v1/messages",status="202"} 2.0' in text
