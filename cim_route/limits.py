"""The route's limits on what one HTTP connection may make it hold (contract v0.2).

- ``BodyLimit`` (ASGI, ahead of everything else): a request body over ``CIM_MAX_REQUEST``
  bytes gets 413 ``too_large`` before it is read: at once when ``Content-Length`` says so, or
  as soon as a chunked body passes the limit. The answer closes the connection, so the rest
  of the body is never read either.
- ``GuardedHttpToolsProtocol`` (uvicorn's httptools protocol with three guards uvicorn does not
  have): request headers over ``MAX_HEAD`` bytes get 431 and a close; a request that is not
  complete ``CIM_HTTP_REQUEST_S`` after its first byte (a slowloris) is closed; so is a new
  connection that sends nothing for ``CIM_HTTP_IDLE_S``. Between requests uvicorn's own
  keep-alive timeout, set to ``CIM_HTTP_IDLE_S``, closes an idle connection.

An answer that closes the connection (413, 431) closes it *lingering*: the route shuts its
sending side and throws away what the client still sends, for up to ``LINGER_S``, before it
closes (at once when the client half-closes: uvicorn's ``eof_received`` lets asyncio close).
Without that, closing a socket with unread bytes makes the kernel reset the connection, and a
client that uploads its whole body before it reads (httpx, curl) never sees the answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cim_route.bodies import read_body, replay

__all__ = ["MAX_HEAD", "BodyLimit", "ConnectionLimits", "GuardedHttpToolsProtocol", "guarded_protocol"]

MAX_HEAD = 16 * 1024
"""Most bytes of a request line and headers."""
_HEAD_SLACK = 64 * 1024
"""Bytes a head may grow by in one read before the precise count (complete headers) sees it."""
LINGER_S = 5.0
"""Longest a closing connection throws away what the client still sends."""
COALESCE_MAX = 64 * 1024
"""Bytes of answer held for the end of the loop turn at most; more are written at once."""


def _error(status: int, reason: bytes, code: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer with the error envelope that closes the connection."""
    body = orjson.dumps({"error": code, "detail": detail})
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, reason, len(body))
    )
    return head + body


class BodyLimit:
    """ASGI wrapper: 413 ``too_large`` for a body over ``limit`` bytes, before reading it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        length, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None and length > self._limit:
            await self._refuse(send, length)
            return
        if not chunked:
            await self._app(scope, receive, send)
            return
        chunks, more = await read_body(receive, self._limit)
        raw = b"".join(chunks)
        if len(raw) > self._limit:
            await self._refuse(send, len(raw))
            return
        await self._app(scope, replay(raw, more, receive), send)

    async def _refuse(self, send: Send, size: int) -> None:
        body = orjson.dumps(
            {"error": "too_large", "detail": f"request body over {self._limit} bytes (CIM_MAX_REQUEST)"}
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    request_s: float = 10.0
    """A request must be complete this long after its first byte."""
    idle_s: float = 60.0
    """A connection that sends nothing this long is closed."""


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: ``close`` closes lingering, and the
    writes of one loop turn go out in one ``write``.

    uvicorn writes an answer's status line and headers, then its body: two ``send`` calls to
    the kernel per request, where the route's hot call costs about as much CPU again. Held
    until the end of the loop turn (or ``COALESCE_MAX`` bytes), they are one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self.lingering = False
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_handle: asyncio.Handle | None = None
        # what uvicorn calls on every request, bound once (``__getattr__`` is for the rest)
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= COALESCE_MAX:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what this loop turn queued (uvicorn's flow control then sees it)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self._out_size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._out_size

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        transport = self._transport
        if self.lingering or transport.is_closing():
            return
        if not transport.can_write_eof():  # TLS: no half-close
            transport.close()
            return
        self.lingering = True
        transport.write_eof()  # after what is buffered: the answer
        transport.resume_reading()  # uvicorn's flow control may have paused it
        self._loop.call_later(LINGER_S, transport.close)

    def close_now(self) -> None:
        self.flush()
        self._transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the header cap, the two deadlines and lingering
    closes."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering = _LingeringTransport(transport, self.loop)
        super().connection_made(self._lingering)  # type: ignore[arg-type]
        self._in_head = False
        """Whether a request head is being read."""
        self._head_raw = 0
        """Bytes read while the head was incomplete, after the read in which it began."""
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(self.limits.idle_s, self._expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering.lingering:
            return  # the answer is out: what the client still sends is thrown away
        in_head = self._in_head
        super().data_received(data)
        if not self._in_head or self._refused:
            return
        self._head_raw += len(data) if in_head else 0
        if self._head_raw > MAX_HEAD + _HEAD_SLACK:
            self._refuse_head()

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_raw = True, 0
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.request_s, self._expired)

    def on_headers_complete(self) -> None:
        self._in_head = False
        # counted once the head is parsed (a callback per header would cost every request);
        # a head that grows over several reads is also bounded by ``data_received``
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEAD:
            self._refused = True
            raise ValueError("request head too large")  # stops the parser: send_400_response
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._refused:  # the parser stopped because the head was too large
            self._refuse_head()
            return
        super().send_400_response(msg)

    # the guards

    def _refuse_head(self) -> None:
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            detail = f"request headers over {MAX_HEAD} bytes"
            self.transport.write(_error(431, b"Request Header Fields Too Large", "too_large", detail))
            self.transport.close()

    def _expired(self) -> None:
        """No complete request in time (or nothing at all on a new connection): close."""
        self._deadline = None
        self._lingering.close_now()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class (for ``uvicorn.Config(http=...)``) with these deadlines."""
    attrs: dict[str, Any] = {"limits": limits}
    return type("GuardedHttpTools", (GuardedHttpToolsProtocol,), attrs)
