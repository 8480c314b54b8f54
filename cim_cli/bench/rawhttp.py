"""A lean HTTP/1.1 keep-alive client for the load generator: one request at a time per connection.

httpx costs ~1.7 ms of CPU per request on this machine, more than the route it
measures; this client writes pre-built request bytes and parses only the status
line and ``Content-Length`` (an ``asyncio.Protocol``, no stream objects), so a
request costs tens of microseconds. It speaks to servers that answer with a
``Content-Length`` (uvicorn does for every JSON answer); anything else is a
``HttpError``. Not for general use: no redirects, no chunked bodies. TLS (an
``https://`` route) goes through asyncio's TLS transport with a context of
``shared.links.client_tls``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from shared.links import client_tls

__all__ = ["HttpConnection", "HttpError", "HttpPool", "parse_url"]

_HEADER_END = b"\r\n\r\n"
_MAX_HEADER = 16384


class HttpError(Exception):
    """The connection broke or the answer is not one this client reads."""


def parse_url(url: str, ca: str = "") -> tuple[str, int, str | None]:
    """``http://host:port`` -> (host, port, None); ``https://...`` -> (host, port, ``ca``): the
    third item is what ``HttpConnection`` takes as ``tls``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r}: cim bench speaks http://HOST:PORT or https://HOST:PORT")
    tls = ca if parts.scheme == "https" else None
    return parts.hostname, parts.port or (443 if tls is not None else 80), tls


class _Protocol(asyncio.Protocol):
    """Collects one answer at a time: status, then exactly Content-Length bytes of body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._status = 0
        self._need = -1
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection closed: {exc or 'by the server'}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._need < 0 and not self._parse_head():
            return
        if len(self._buf) >= self._need:
            body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = -1
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result((self._status, body))

    def _parse_head(self) -> bool:
        end = self._buf.find(_HEADER_END)
        if end < 0:
            if len(self._buf) > _MAX_HEADER:
                self._fail("answer header too large")
            return False
        head = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        try:
            self._status = int(head[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            self._fail(f"bad status line {head[0][:80]!r}")
            return False
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                self._need = int(value)
                return True
        if self._status in (204, 304):
            self._need = 0
            return True
        self._fail("answer without Content-Length")
        return False

    def _fail(self, why: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(why))
        if self.transport is not None:
            self.transport.close()

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self.transport is None:
            raise HttpError("not connected")
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter


class HttpConnection:
    """One keep-alive connection to ``host:port``; reconnects on the next request after a close.
    ``tls``: None for plain TCP, else TLS checked against that CA file ("": the system store)."""

    def __init__(self, host: str, port: int, tls: str | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self._proto: _Protocol | None = None
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    async def _connected(self) -> _Protocol:
        if self._proto is None or self._proto.transport is None:
            loop = asyncio.get_running_loop()
            try:
                ssl = None if self.tls is None else client_tls(self.tls)
                _, self._proto = await loop.create_connection(_Protocol, self.host, self.port, ssl=ssl)
            except OSError as exc:
                raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return self._proto

    def build(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> bytes:
        """The bytes of one request, to build once and send many times with ``send``."""
        lines = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._host_header
        if body:
            lines += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head + lines.encode() + b"\r\n" + body

    async def send(self, data: bytes) -> tuple[int, bytes]:
        """Send the bytes of one request (from ``build``) and return (status, body)."""
        proto = await self._connected()
        return await proto.request(data)

    async def call(
        self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """A JSON request -> (status, decoded JSON answer or None), for setup calls."""
        body = json.dumps(payload).encode() if payload is not None else b""
        status, answer = await self.send(self.build(method, path, body, headers))
        return status, json.loads(answer) if answer else None

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class HttpPool:
    """A bounded set of connections shared by many callers (setup and reconnect traffic)."""

    def __init__(self, host: str, port: int, tls: str | None, size: int) -> None:
        self._free: asyncio.Queue[HttpConnection] = asyncio.Queue(maxsize=size)
        self._all = [HttpConnection(host, port, tls) for _ in range(size)]
        for conn in self._all:
            self._free.put_nowait(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[HttpConnection]:
        conn = await self._free.get()
        try:
            yield conn
        except BaseException:
            conn.close()  # its answer may still be on the way: never reuse it
            raise
        finally:
            self._free.put_nowait(conn)

    async def call(
        self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.connection() as conn:
            return await conn.call(method, path, payload, headers)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
