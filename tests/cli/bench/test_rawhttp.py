"""The lean HTTP client against a scripted server on loopback: keep-alive, bodies, broken answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from cim_cli.bench.rawhttp import HttpConnection, HttpError, HttpPool, parse_url


@asynccontextmanager
async def _server(answers: list[bytes]) -> AsyncIterator[tuple[int, list[bytes]]]:
    """Answers each request (read up to its blank line + Content-Length body) with the next answer."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            seen.append(head + await reader.readexactly(length))
            writer.write(answers.pop(0))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


def _answer(status: int, body: bytes) -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


async def test_two_requests_on_one_keep_alive_connection() -> None:
    async with _server([_answer(202, b'{"id":"a"}'), _answer(404, b"{}")]) as (port, seen):
        conn = HttpConnection("127.0.0.1", port)
        try:
            assert await conn.call("POST", "/m", {"to": "bob"}, {"Authorization": "Bearer t"}) == (
                202,
                {"id": "a"},
            )
            assert await conn.call("GET", "/x") == (404, {})
        finally:
            conn.close()
    assert seen[0].startswith(b"POST /m HTTP/1.1\r\n") and b"Authorization: Bearer t" in seen[0]
    assert seen[0].endswith(b'\r\n\r\n{"to": "bob"}') and seen[1].startswith(b"GET /x HTTP/1.1\r\n")


async def test_an_answer_without_content_length_is_an_error() -> None:
    async with _server([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]) as (port, _):
        conn = HttpConnection("127.0.0.1", port)
        with pytest.raises(HttpError, match="without Content-Length"):
            await conn.call("GET", "/")
        conn.close()


async def test_a_closed_connection_is_an_error_and_nothing_listening_too() -> None:
    async with _server([]) as (port, _):
        pool = HttpPool("127.0.0.1", port, None, 1)
        with pytest.raises(HttpError, match="closed"):
            await pool.call("GET", "/")
        pool.close()
    with pytest.raises(HttpError, match="cannot connect"):
        await HttpConnection("127.0.0.1", port).call("GET", "/")


def test_http_and_https_urls_only() -> None:
    assert parse_url("http://127.0.0.1:8080") == ("127.0.0.1", 8080, None)
    assert parse_url("https://example.org", "ca.pem") == ("example.org", 443, "ca.pem")
    with pytest.raises(ValueError, match="https://HOST:PORT"):
        parse_url("ftp://example.org")
