"""The connection under a session: TCP (length-prefixed MessagePack frames) or a WebSocket
(one binary MessagePack message per frame, at the node's ``ws_url``). ``NodeLink`` speaks
frames through either and does not know which.

The WebSocket transport (``_websocket.py``) needs the ``websockets`` package (a dependency of
cim, the ``ws`` extra of the cim-client distribution); it is imported only when used.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, Protocol

from cim_client._models import NodeAddress
from shared.errors import CimError
from shared.protocol import FrameDecoder, encode

__all__ = ["MAX_INCOMING_FRAME", "TRANSPORTS", "NodeSocket", "open_socket"]

TRANSPORTS = ("tcp", "ws")
MAX_INCOMING_FRAME = 1 << 20
"""Largest frame accepted from a node (a node's own limit is usually far lower)."""
_CLOSE_TIMEOUT_S = 2.0


class NodeSocket(Protocol):
    """Frames to and from one node."""

    async def send(self, frame: dict[str, Any]) -> None: ...

    async def receive(self) -> list[dict[str, Any]]:
        """The next frames (at least one); ``EOFError`` once the node closed the connection."""
        ...

    async def close(self) -> None: ...


async def open_socket(node: NodeAddress, transport: str, tls: ssl.SSLContext) -> NodeSocket:
    """Connect to ``node`` over ``transport`` (``tcp`` or ``ws``); a node whose login answer says
    ``tls`` is checked with ``tls``."""
    if transport == "ws":
        if not node.ws_url:
            raise CimError("no_websocket", f"node {node.id} has no WebSocket listener")
        from cim_client._websocket import WebSocket  # noqa: PLC0415 - needs the optional websockets

        wss = tls if node.ws_url.startswith("wss://") else None
        return await WebSocket.open(node.ws_url, MAX_INCOMING_FRAME, _CLOSE_TIMEOUT_S, wss)
    return await _TcpSocket.open(node.host, node.port, tls if node.tls else None)


class _TcpSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(MAX_INCOMING_FRAME)

    @classmethod
    async def open(cls, host: str, port: int, tls: ssl.SSLContext | None) -> _TcpSocket:
        return cls(*await asyncio.open_connection(host, port, ssl=tls))

    async def send(self, frame: dict[str, Any]) -> None:
        self._writer.write(encode(frame))
        await self._writer.drain()

    async def receive(self) -> list[dict[str, Any]]:
        while True:
            data = await self._reader.read(65536)
            if not data:
                raise EOFError("the node closed the connection")
            frames = list(self._decoder.feed(data))
            if frames:
                return frames

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()
