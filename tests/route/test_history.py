"""GET /history: order, filters, access control."""

from __future__ import annotations

from tests.harness import envelope
from tests.route.conftest import RouteUnderTest


async def test_direct_history(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    cid = await route.user("cid")
    answers = []
    for i, (headers, to) in enumerate([(ann, "bob"), (bob, "ann"), (ann, "bob"), (ann, "cid")]):
        resp = await route.http.post("/messages", json={"to": to, "body": f"Hello {i}"}, headers=headers)
        answers.append(resp.json())
    await route.ctx.history.flush(5)
    page = (await route.http.get("/history", params={"with": "bob"}, headers=ann)).json()["messages"]
    assert [m["body"] for m in page] == ["Hello 2", "Hello 1", "Hello 0"]
    assert page[0] == {
        "id": answers[2]["id"],
        "kind": "p2p",
        "from": "ann",
        "to": "bob",
        "body": "Hello 2",
        "ts": answers[2]["ts"],
    }
    # the same conversation seen from bob's side
    assert (await route.http.get("/history", params={"with": "ann"}, headers=bob)).json()["messages"] == page
    # cid only sees its own conversation with ann
    assert [
        m["body"]
        for m in (await route.http.get("/history", params={"with": "ann"}, headers=cid)).json()["messages"]
    ] == ["Hello 3"]
    limited = (await route.http.get("/history", params={"with": "bob", "limit": 2}, headers=ann)).json()[
        "messages"
    ]
    assert [m["body"] for m in limited] == ["Hello 2", "Hello 1"]
    before = (
        await route.http.get("/history", params={"with": "bob", "before": page[0]["ts"]}, headers=ann)
    ).json()
    assert all(m["ts"] < page[0]["ts"] for m in before["messages"])
    found = (await route.http.get("/history", params={"with": "bob", "q": "LO 1"}, headers=ann)).json()[
        "messages"
    ]
    assert [m["body"] for m in found] == ["Hello 1"]


async def test_group_history_and_access(route: RouteUnderTest) -> None:
    ann = await route.user("ann")
    bob = await route.user("bob")
    eve = await route.user("eve")
    await route.http.post("/groups", json={"name": "team", "members": ["bob"]}, headers=ann)
    await route.http.post("/groups/team/messages", json={"body": "one"}, headers=ann)
    await route.http.post("/groups/team/messages", json={"body": "two"}, headers=bob)
    await route.ctx.history.flush(5)
    page = (await route.http.get("/history", params={"group": "team"}, headers=ann)).json()["messages"]
    assert [(m["from"], m["body"], m["group"], m["kind"]) for m in page] == [
        ("bob", "two", "team", "group"),
        ("ann", "one", "team", "group"),
    ]
    envelope(await route.http.get("/history", params={"group": "team"}, headers=eve), 403, "not_member")
    envelope(await route.http.get("/history", params={"group": "nope"}, headers=eve), 404, "unknown_group")
    envelope(await route.http.get("/history", params={"with": "nobody"}, headers=eve), 404, "unknown_user")
    envelope(await route.http.get("/history", headers=eve), 422, "invalid_request")
    envelope(
        await route.http.get("/history", params={"with": "ann", "group": "team"}, headers=eve),
        422,
        "invalid_request",
    )
    envelope(
        await route.http.get("/history", params={"with": "ann", "limit": 201}, headers=eve),
        422,
        "invalid_request",
    )
    envelope(await route.http.get("/history", params={"with": "ann"}), 401, "unauthorized")
