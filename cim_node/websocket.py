"""WebSocket clients (path ``/ws``) on the same ``Connection`` as TCP clients.

``WebSocketLink`` sits between the socket and a ``Connection``: to the socket it
is the asyncio protocol, to the ``Connection`` it is the transport. The
WebSocket protocol itself (handshake, framing, masking, ping/pong, closing) is
``websockets``' Sans-I/O ``ServerProtocol``, run on this loop with no task of
its own; permessage-deflate is off (no extension is offered).

The ``Connection`` keeps speaking the TCP contract -- length-prefixed
MessagePack frames -- so its state machine (login deadline, heartbeat, replay,
ack, kicks, errors, slow-reader cut-off) is the very same code for both
transports. The link translates, one WebSocket message per frame:

- in: a binary message is the MessagePack map, given to the connection with its
  4-byte length; a text message is the same map as JSON, re-encoded to
  MessagePack. Text that is not JSON gets ``error{bad_frame}``; a message over
  ``CIM_MAX_FRAME`` gets ``error{frame_too_large}``; a WebSocket protocol
  violation ``error{bad_frame}`` -- each then a close of that connection only.
- out: each frame the connection writes goes out as one message, binary, or
  JSON text when the client's first message (its ``login``) was text.

The login deadline starts when the TCP connection is accepted, so a client that
never finishes the handshake is closed like one that never logs in. ``Origin``
is checked in the handshake (403) against ``CIM_WEB_ORIGINS``; a client that
sends none (not a browser) is let through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol, cast

import msgpack
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Origin

from shared.protocol import ErrorCode
from shared.settings import NodeSettings

__all__ = ["PATH", "ClientConnection", "WebSocketLink", "listen"]

log = logging.getLogger(__name__)
_wire_log = logging.getLogger(__name__ + ".wire")
_wire_log.setLevel(logging.WARNING)  # websockets logs every open and close at INFO

PATH = "/ws"
_LENGTH = struct.Struct(">I")
_HEADER_16 = struct.Struct(">BBH")
_HEADER_64 = struct.Struct(">BBQ")
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class ClientConnection(Protocol):
    """What the link needs of a connection: an asyncio protocol that can fail with a code."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...

    def fail(self, code: ErrorCode, reason: str) -> None: ...


class _ServerProtocol(ServerProtocol):
    """``ServerProtocol`` that lets the link send its ``error`` frame before a failure's close."""

    def __init__(self, on_fail: Callable[[int, str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_fail = on_fail

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if self.state is State.OPEN and code != CloseCode.ABNORMAL_CLOSURE:
            self._on_fail(code, reason)
        super().fail(code, reason)


Origins = list[Origin | None] | None


def _origins(settings: NodeSettings) -> Origins:
    """``CIM_WEB_ORIGINS`` as ``ServerProtocol`` takes it (None: any; None in it: no header)."""
    allowed = settings.allowed_origins
    if "*" in allowed:
        return None
    return [*(Origin(o) for o in sorted(allowed)), None]


class WebSocketLink(asyncio.Protocol, asyncio.Transport):
    """One WebSocket client: the socket's protocol and its ``Connection``'s transport."""

    __slots__ = ("_conn", "_ws", "_tcp", "_json", "_parts", "_text", "_closing")

    def __init__(self, conn: ClientConnection, origins: Origins, max_frame: int) -> None:
        """``origins``: the accepted ``Origin`` values (None among them: no header; ``origins``
        None: any), one list shared by every link of a listener."""
        asyncio.Transport.__init__(self)
        self._conn = conn
        self._ws = _ServerProtocol(self._failed, origins=origins, max_size=max_frame, logger=_wire_log)
        self._tcp: asyncio.Transport | None = None
        self._json: bool | None = None
        """The answers' encoding, set by the client's first message: JSON if it was text."""
        self._parts: list[bytes] | None = None
        """The fragments of a message that came in several frames (rare; browsers send one)."""
        self._text = False
        self._closing = False

    # ----- below: the socket ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport; it has the same methods.
        self._tcp = cast(asyncio.Transport, transport)
        self._conn.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        self._pump()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._pump()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self._conn.pause_writing()

    def resume_writing(self) -> None:
        self._conn.resume_writing()

    def _pump(self) -> None:
        for event in self._ws.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame) and event.opcode in _DATA:
                self._frame(event)
        self._send()

    def _handshake(self, request: Request) -> None:
        if urllib.parse.urlsplit(request.path).path != PATH:
            response = self._ws.reject(HTTPStatus.NOT_FOUND, f"WebSocket clients connect to {PATH}\n")
        else:
            response = self._ws.accept(request)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            log.info(
                "websocket handshake refused (%d): path %r origin %r",
                response.status_code,
                request.path,
                request.headers.get("Origin"),
            )
        self._ws.send_response(response)
        # The protocol's parser generator keeps the request alive for the whole connection
        # (a local of its frame); its headers are most of an idle connection's memory.
        request.headers.clear()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is not Opcode.CONT:
            self._text = frame.opcode is Opcode.TEXT
            self._parts = None
        if not frame.fin:  # the protocol keeps the whole message under max_size
            self._parts = [*(self._parts or ()), frame.data]
            return
        payload = frame.data if self._parts is None else b"".join([*self._parts, frame.data])
        self._parts = None
        if self._json is None:
            self._json = self._text
        if self._text:
            try:
                payload = msgpack.packb(json.loads(payload), use_bin_type=True)
            except (ValueError, TypeError, OverflowError):  # not JSON (or not UTF-8), or no MessagePack
                self._conn.fail(ErrorCode.BAD_FRAME, "a text message must be a JSON map")
                return
        self._conn.data_received(_LENGTH.pack(len(payload)) + payload)

    def _failed(self, code: int, reason: str) -> None:
        """The WebSocket layer refused what the client sent (the protocol closes after this)."""
        if code == CloseCode.MESSAGE_TOO_BIG:
            self._conn.fail(ErrorCode.FRAME_TOO_LARGE, reason or "message too large")
        else:
            self._conn.fail(ErrorCode.BAD_FRAME, f"websocket: {reason or 'protocol error'}")

    def _send(self) -> None:
        tcp = self._tcp
        if tcp is None:
            return
        for chunk in self._ws.data_to_send():
            if tcp.is_closing():
                return
            if chunk:
                tcp.write(chunk)
            else:  # the protocol is done with the socket: it closes after the last bytes
                tcp.close()

    # ----- above: the connection's transport ----------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Frames as the connection writes them (length-prefixed MessagePack), one message each,
        all in one socket write. The messages are framed here rather than by the protocol object
        (a server's frames are unmasked: a header and the payload), which halves the cost of a
        binary message; the protocol's own output (pongs, the close) is always sent first."""
        if self._ws.state is not State.OPEN or self._tcp is None:
            return  # nothing may go before the handshake or after the close
        self._send()
        view = memoryview(data)
        parts: list[bytes | memoryview] = []
        at = 0
        while at < len(view):
            (size,) = _LENGTH.unpack_from(view, at)
            frame = view[at + 4 : at + 4 + size]
            at += 4 + size
            payload = _as_json(frame) if self._json else frame
            parts += (_header(Opcode.TEXT if self._json else Opcode.BINARY, len(payload)), payload)
        if not self._tcp.is_closing():
            self._tcp.write(b"".join(parts))

    def close(self) -> None:
        """Send a close frame; the socket closes when the client answers it (or the connection's
        grace timer aborts it). Before the handshake the socket just closes."""
        if self._closing:
            return
        self._closing = True
        if self._ws.state is State.OPEN:
            self._ws.send_close(CloseCode.NORMAL_CLOSURE)
            self._send()
        elif self._tcp is not None:
            self._tcp.close()

    def abort(self) -> None:
        self._closing = True
        if self._tcp is not None:
            self._tcp.abort()

    def is_closing(self) -> bool:
        return self._closing or self._tcp is None or self._tcp.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._tcp.get_write_buffer_size() if self._tcp is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._tcp is not None:
            self._tcp.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        if self._tcp is not None:
            self._tcp.pause_reading()

    def resume_reading(self) -> None:
        if self._tcp is not None:
            self._tcp.resume_reading()

    def is_reading(self) -> bool:
        return self._tcp is not None and self._tcp.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tcp.get_extra_info(name, default) if self._tcp is not None else default


def _header(opcode: Opcode, size: int) -> bytes:
    """The header of one unfragmented, unmasked frame (RFC 6455 section 5.2)."""
    first = 0x80 | opcode.value
    if size < 126:
        return bytes((first, size))
    if size < 1 << 16:
        return _HEADER_16.pack(first, 126, size)
    return _HEADER_64.pack(first, 127, size)


def _as_json(frame: memoryview) -> bytes:
    text = json.dumps(msgpack.unpackb(frame, raw=False), ensure_ascii=False, separators=(",", ":"))
    return text.encode()


async def listen(
    loop: asyncio.AbstractEventLoop, make_connection: Callable[[], ClientConnection], settings: NodeSettings
) -> asyncio.Server:
    """The WebSocket listener on ``node_host:node_ws_port``, each client on ``make_connection()``."""
    if not settings.allowed_origins:
        log.warning(
            "node=%s: no browser origin allowed (set CIM_ROUTE_URL or CIM_WEB_ORIGINS): "
            "browsers' WebSocket handshakes will be refused",
            settings.node_id,
        )
    origins = _origins(settings)
    return await loop.create_server(
        lambda: WebSocketLink(make_connection(), origins, settings.max_frame),
        settings.node_host,
        settings.node_ws_port,
        backlog=4096,
        reuse_address=True,
        ssl=settings.server_tls(),  # wss:// when the node has a certificate
        ssl_handshake_timeout=settings.login_timeout_s if settings.tls else None,
    )
