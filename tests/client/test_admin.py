"""``AdminClient`` (cim_client/_admin.py): every call carries the API key."""

from __future__ import annotations

import json

import httpx

from cim_client import AdminClient


async def test_admin_client_sends_api_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/push":
            return httpx.Response(202, json={"id": "p1", "recipients": 2})
        return httpx.Response(200, json=[])

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    admin = AdminClient("http://route.test/", "k1", http=http)
    assert await admin.push(["a", "b"], "hey") == {"id": "p1", "recipients": 2}
    assert await admin.nodes() == []
    assert all(r.headers["X-API-Key"] == "k1" for r in seen)
    assert json.loads(seen[0].content) == {"to": ["a", "b"], "body": "hey"}
    await http.aclose()
