"""A tiny fake node (an asyncio server speaking shared.protocol) and a mock route, for SDK
tests that pin what a real node cannot be made to do on demand: duplicate frames, a chosen
kick, 503 answers. The ``node`` and ``route`` fixtures (conftest.py) start them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from cim_client import Client
from shared.protocol import FrameDecoder, encode

__all__ = ["FakeNode", "FakeRoute", "make_client", "msg"]


class FakeNode:
    """Accepts connections, answers login with welcome, records what clients send."""

    def __init__(self, heartbeat_s: float = 30, welcome_last_seq: int = 0) -> None:
        self.heartbeat_s = heartbeat_s
        self.welcome_last_seq = welcome_last_seq
        self.logins: list[dict[str, Any]] = []
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue(1000)
        self.conns: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue(100)
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    await self._on_frame(frame, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _on_frame(self, frame: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        if frame["t"] == "login":
            self.logins.append(frame)
            writer.write(
                encode(
                    {
                        "t": "welcome",
                        "user": "alice",
                        "node": "fake-1",
                        "heartbeat_s": self.heartbeat_s,
                        "last_seq": frame.get("last_seq", self.welcome_last_seq),
                    }
                )
            )
            await self.conns.put(writer)
        elif frame["t"] == "ping":
            writer.write(encode({"t": "pong"}))
        await self.received.put(frame)

    async def next_received(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.received.get()
                if frame["t"] == kind:
                    return frame


def msg(seq: int, body: str = "hi") -> dict[str, Any]:
    return {
        "t": "msg",
        "id": f"m{seq}",
        "seq": seq,
        "kind": "p2p",
        "from": "bob",
        "to": "alice",
        "body": body,
        "ts": 1000 + seq,
    }


class FakeRoute:
    """httpx.MockTransport handler: /login points at the fake node; other answers are scripted.

    ``http`` is an HTTP client whose requests come here (the ``route`` fixture closes it).
    """

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.calls: list[tuple[str, str, Any]] = []
        self.scripted: dict[str, list[httpx.Response]] = {}
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.calls.append((request.method, path, body))
        if self.scripted.get(path):
            return self.scripted[path].pop(0)
        if path == "/api/v1/login":
            node = {"id": "fake-1", "host": "127.0.0.1", "port": self.node.port}
            return httpx.Response(
                200, json={"username": "alice", "token": "tok", "expires_at": 1, "node": node}
            )
        if path == "/api/v1/messages":
            return httpx.Response(202, json={"id": "x1", "seq": 7, "ts": 5, "status": "delivered"})
        return httpx.Response(404, json={"error": "not_found", "detail": path})


def make_client(route: FakeRoute, **kwargs: Any) -> Client:
    """alice's client, talking to ``route``."""
    kwargs.setdefault("backoff_min", 0.01)
    return Client("http://route.test", "alice", "password123", http=route.http, **kwargs)
