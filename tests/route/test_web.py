"""cim_route.api.web: the chat at /, the operator page at /admin, their files under /web/."""

from __future__ import annotations

import pytest

from cim_route.api.web import ASSETS
from tests.route.conftest import RouteUnderTest


async def test_chat_page_allows_sockets_only_to_the_known_nodes(route: RouteUnderTest) -> None:
    await route.add_node("web-a", ws_port=9443)
    resp = await route.root.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/web/chat.js">' in resp.text
    policy = resp.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    # the node without a WebSocket listener adds nothing; the other adds its origin only
    assert "connect-src 'self' ws://127.0.0.1:9443;" in policy
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["x-content-type-options"] == "nosniff"


async def test_admin_page_connects_to_nothing_but_the_route(route: RouteUnderTest) -> None:
    await route.add_node("web-b", ws_port=9444)
    resp = await route.root.get("/admin")
    assert resp.status_code == 200 and '<script type="module" src="/web/admin.js">' in resp.text
    assert "connect-src 'self';" in resp.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("chat.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("admin.js", "text/javascript; charset=utf-8"),
        ("chat.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_assets_are_served_with_an_etag(route: RouteUnderTest, name: str, media_type: str) -> None:
    resp = await route.root.get(f"/web/{name}")
    assert resp.status_code == 200 and resp.headers["content-type"] == media_type and resp.content
    etag = resp.headers["etag"]
    again = await route.root.get(f"/web/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content


async def test_every_asset_is_listed_and_nothing_else_is_served(route: RouteUnderTest) -> None:
    assert ASSETS == {"chat.js", "chat.css", "admin.js", "api.js", "icon.svg"}
    for name in ("index.html", "../app.py", "secret", "%2e%2e%2fapp.py"):
        resp = await route.root.get(f"/web/{name}")
        assert resp.status_code == 404, name
        assert resp.json()["error"] == "not_found"


async def test_pages_stay_out_of_the_api_schema(route: RouteUnderTest) -> None:
    paths = (await route.root.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and "/admin" not in paths and "/web/{name}" not in paths
    assert "/api/v1/login" in paths
