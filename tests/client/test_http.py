"""HTTP to the route (cim_client/_http.py): the ``/api/v1`` URL, the error envelope as
``CimApiError``, and retries of sends under one ``client_msg_id``."""

from __future__ import annotations

import httpx
import pytest

from cim_client import CimApiError, api_url, retryable
from cim_client._http import raise_for_error
from tests.client.fakes import FakeNode, FakeRoute, make_client


def test_api_url_takes_the_route_with_or_without_the_suffix() -> None:
    assert api_url("http://r:1") == "http://r:1/api/v1"
    assert api_url("http://r:1/") == "http://r:1/api/v1"
    assert api_url("https://r/api/v1/") == "https://r/api/v1"


def test_an_answer_without_the_envelope_still_raises_with_its_status() -> None:
    raise_for_error(httpx.Response(202, json={"id": "x"}))  # not an error
    with pytest.raises(CimApiError) as info:
        raise_for_error(httpx.Response(502, text="<html>bad gateway</html>"))
    assert (info.value.status, info.value.code) == (502, "http_502")
    assert "bad gateway" in info.value.detail


def test_retryable() -> None:
    assert retryable(CimApiError(503, "unavailable")) and retryable(CimApiError(429, "rate_limited"))
    assert not retryable(CimApiError(404, "unknown_user"))
    assert retryable(httpx.ConnectError("refused")) and retryable(ConnectionResetError())
    assert not retryable(ValueError("a bug"))


async def test_send_retries_503_with_same_client_msg_id(node: FakeNode, route: FakeRoute) -> None:
    route.scripted["/api/v1/messages"] = [
        httpx.Response(503, json={"error": "unavailable", "detail": "redis down"}),
        httpx.Response(503, json={"error": "unavailable", "detail": "redis down"}),
    ]
    client = make_client(route)
    try:
        await client.login()
        result = await client.send("bob", "hello")
        assert (result.id, result.seq, result.status) == ("x1", 7, "delivered")
        ids = [body["client_msg_id"] for _, path, body in route.calls if path == "/api/v1/messages"]
        assert len(ids) == 3 and len(set(ids)) == 1
    finally:
        await client.close()


async def test_api_errors_carry_the_envelope(node: FakeNode, route: FakeRoute) -> None:
    route.scripted["/api/v1/messages"] = [
        httpx.Response(404, json={"error": "unknown_user", "detail": "no zed"})
    ]
    client = make_client(route)
    try:
        await client.login()
        with pytest.raises(CimApiError) as info:
            await client.send("zed", "hello")
        assert (info.value.status, info.value.code, info.value.detail) == (404, "unknown_user", "no zed")
    finally:
        await client.close()


async def test_a_refused_send_is_not_retried(node: FakeNode, route: FakeRoute) -> None:
    route.scripted["/api/v1/messages"] = [httpx.Response(429, json={"error": "rate_limited", "detail": ""})]
    client = make_client(route)
    try:
        await client.login()
        with pytest.raises(CimApiError) as info:
            await client.send("bob", "hello")
        assert info.value.code == "rate_limited"
        assert sum(1 for _, path, _ in route.calls if path == "/api/v1/messages") == 1
    finally:
        await client.close()
