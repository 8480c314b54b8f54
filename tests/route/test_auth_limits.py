"""Registration and login limits: per client address, and a wrong-password back-off per
(username, address) that holds the guesser back, never the owner (contract v0.2)."""

from __future__ import annotations

import asyncio

import pytest

from cim_route.address import client_address, networks
from shared.settings import RateLimit
from tests.harness import envelope
from tests.route.conftest import PASSWORD, MakeRoute, RouteUnderTest

PROXY = {"trusted_proxies": ("127.0.0.1",)}
"""The in-process client is 127.0.0.1: trusted, its X-Forwarded-For names each test's client."""


def at(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def login(route: RouteUnderTest, user: str, password: str, address: str) -> int:
    resp = await route.http.post("/login", json={"username": user, "password": password}, headers=at(address))
    return resp.status_code


async def test_the_owner_logs_in_from_elsewhere_during_a_guessing_attack(make_route: MakeRoute) -> None:
    route = await make_route(login_max_failures=3, login_lockout_s=60, **PROXY)
    await route.http.post("/users", json={"username": "dora", "password": PASSWORD})
    for i in range(3):
        assert await login(route, "dora", f"guess-{i:04d}", "10.0.0.66") == 401
    held = await route.http.post(
        "/login", json={"username": "dora", "password": PASSWORD}, headers=at("10.0.0.66")
    )
    envelope(held, 429, "rate_limited")  # even the right password: that address waits
    assert 1 <= int(held.headers["Retry-After"]) <= 60
    assert await login(route, "dora", PASSWORD, "10.0.0.7") == 200  # the owner, elsewhere
    assert await login(route, "dora", PASSWORD, "10.0.0.7") == 200
    # the guesser's wait is for dora only
    await route.http.post("/users", json={"username": "eve", "password": PASSWORD})
    assert await login(route, "eve", PASSWORD, "10.0.0.66") == 200


async def test_parallel_guesses_count_one_each(make_route: MakeRoute) -> None:
    route = await make_route(login_max_failures=5, **PROXY)
    await route.http.post("/users", json={"username": "finn", "password": PASSWORD})
    checked = route.ctx.metrics.logins.labels("bad_credentials")
    before = checked._value.get()
    codes = await asyncio.gather(*(login(route, "finn", f"guess-{i:04d}", "10.1.1.1") for i in range(40)))
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == 5 and codes.count(429) == 35
    assert checked._value.get() - before == 5  # at most the allowed number were checked


async def test_a_right_password_resets_the_count(make_route: MakeRoute) -> None:
    route = await make_route(login_max_failures=2, **PROXY)
    await route.http.post("/users", json={"username": "gus", "password": PASSWORD})
    for _ in range(3):  # one wrong password between right ones never adds up
        assert await login(route, "gus", "nope-nope", "10.2.2.2") == 401
        assert await login(route, "gus", PASSWORD, "10.2.2.2") == 200
    for _ in range(2):
        assert await login(route, "gus", "nope-nope", "10.2.2.2") == 401
    assert await login(route, "gus", PASSWORD, "10.2.2.2") == 429


async def test_register_and_login_are_limited_per_address(make_route: MakeRoute) -> None:
    route = await make_route(auth_rate=RateLimit(1, 3), **PROXY)  # 1 a minute, bursts of 3
    for i in range(3):
        resp = await route.http.post(
            "/users", json={"username": f"u{i}", "password": PASSWORD}, headers=at("10.3.3.3")
        )
        assert resp.status_code == 201
    refused = await route.http.post(
        "/login", json={"username": "u0", "password": PASSWORD}, headers=at("10.3.3.3")
    )
    envelope(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert await login(route, "u0", PASSWORD, "10.3.3.4") == 200  # another address is not held back


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"client": (peer, 5000), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", "10.9.9.9", "192.0.2.1"),  # an untrusted peer's header is not believed
        ("10.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.5, 10.0.0.2", "203.0.113.5"),  # rightmost untrusted hop
        ("10.0.0.1", None, "10.0.0.1"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(scope(peer, forwarded), networks(["10.0.0.0/8"])) == expected
