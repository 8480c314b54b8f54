"""Token revocation: an operator's kick revokes every earlier token of the user (its token
epoch, checked with the revocation lookup); ``POST /me/password`` revokes the others."""

from __future__ import annotations

from tests.harness import envelope
from tests.route.conftest import PASSWORD, RouteUnderTest, next_payload


async def login(route: RouteUnderTest, user: str, password: str = PASSWORD) -> dict[str, str]:
    resp = await route.http.post("/login", json={"username": user, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


async def test_kick_revokes_earlier_tokens_everywhere(route: RouteUnderTest, nc) -> None:
    old = await route.user("ann")
    await route.user("bob")
    other_old = await login(route, "ann")
    await route.connect("ann")
    sub = await nc.subscribe(f"cim.node.{route.node}")
    await nc.flush()
    assert (await route.http.delete("/sessions/ann", headers=route.admin)).status_code == 204
    assert (await next_payload(sub))["k"] == "kick"
    for headers in (old, other_old):
        envelope(await route.http.get("/me", headers=headers), 401, "unauthorized")
        sent = await route.http.post("/messages", json={"to": "bob", "body": "hi"}, headers=headers)
        envelope(sent, 401, "unauthorized")  # the lean send path checks it too
        sent = await route.http.post("/broadcast", json={"body": "hi"}, headers=headers)
        envelope(sent, 401, "unauthorized")
    fresh = await login(route, "ann")  # a login after the kick works
    assert (await route.http.get("/me", headers=fresh)).status_code == 200
    assert (
        await route.http.post("/messages", json={"to": "bob", "body": "hi"}, headers=fresh)
    ).status_code == 202


async def test_kick_without_revoke_keeps_tokens(route: RouteUnderTest) -> None:
    headers = await route.user("cai")
    resp = await route.http.delete("/sessions/cai", params={"revoke": "false"}, headers=route.admin)
    assert resp.status_code == 204
    assert (await route.http.get("/me", headers=headers)).status_code == 200


async def test_password_change_revokes_the_other_tokens(route: RouteUnderTest) -> None:
    mine = await route.user("dan")
    other = await login(route, "dan")
    wrong = await route.http.post(
        "/me/password", json={"old": "not-it-at-all", "new": "n" * 12}, headers=mine
    )
    envelope(wrong, 401, "bad_credentials")
    short = await route.http.post("/me/password", json={"old": PASSWORD, "new": "short"}, headers=mine)
    envelope(short, 422, "invalid_request")
    changed = await route.http.post("/me/password", json={"old": PASSWORD, "new": "n" * 12}, headers=mine)
    assert changed.status_code == 204
    assert (await route.http.get("/me", headers=mine)).status_code == 200  # the caller's stays
    envelope(await route.http.get("/me", headers=other), 401, "unauthorized")
    bad = await route.http.post("/login", json={"username": "dan", "password": PASSWORD})
    envelope(bad, 401, "bad_credentials")
    await login(route, "dan", "n" * 12)
