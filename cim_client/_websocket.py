"""A node session over a WebSocket: one binary MessagePack message per frame (``ws_url``)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from shared.errors import CimError
from shared.protocol import decode_payload

__all__ = ["WebSocket"]


class WebSocket:
    """A ``NodeSocket`` over ``websockets``' asyncio client."""

    def __init__(self, ws: ClientConnection, close_timeout: float) -> None:
        self._ws = ws
        self._close_timeout = close_timeout

    @classmethod
    async def open(
        cls, url: str, max_frame: int, close_timeout: float, tls: ssl.SSLContext | None = None
    ) -> WebSocket:
        try:
            # No WebSocket-level pings: the session's ping frames keep it alive (as on TCP).
            ws = await connect(url, compression=None, max_size=max_frame, ping_interval=None, ssl=tls)
        except InvalidHandshake as exc:  # the node said no (origin, path): trying again won't help
            raise CimError("websocket_refused", f"{url}: {exc}") from exc
        return cls(ws, close_timeout)

    async def send(self, frame: dict[str, Any]) -> None:
        try:
            await self._ws.send(msgpack.packb(frame, use_bin_type=True))
        except ConnectionClosed as exc:
            raise EOFError("the node closed the connection") from exc

    async def receive(self) -> list[dict[str, Any]]:
        try:
            message = await self._ws.recv()
        except ConnectionClosed as exc:
            raise EOFError("the node closed the connection") from exc
        return [decode_payload(message if isinstance(message, bytes) else message.encode())]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._close_timeout):
                await self._ws.close()
