"""Node tests: an in-process ``NodeServer`` on port 0 against the session NATS and Redis.

Each test runs twice, on asyncio's loop and on uvloop. It gets its own Redis
key prefix and node id, and a ``MemoryRegistry`` (the NATS KV registry has its
own suite). ``Client`` speaks the frame protocol
over a real loopback socket; ``Inbox`` stores messages the way the route does
(``shared.inbox.store``) and publishes them on the bus.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from nats.aio.client import Client as NatsClient

from cim_cli.ops.services import Service
from cim_node.server import NodeServer
from shared import bus, inbox, tokens
from shared.keys import Keys
from shared.protocol import FrameDecoder, encode
from shared.registry import MemoryRegistry
from shared.scripts import Scripts
from shared.settings import NodeSettings
from tests.conftest import SECRET

NodeFactory = Callable[..., Awaitable[NodeServer]]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every node test runs on the stock loop and on uvloop (what ``python -m cim_node`` uses)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


class Closed(Exception):
    """The node closed the connection."""


class LoginMixin:
    """``login`` for a test client of either transport: it has ``send(frame)`` and ``recv()``."""

    async def send(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raise NotImplementedError

    async def login(self, user: str, last_seq: int | None = None, token: str | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"t": "login", "token": token or tokens.issue(SECRET, user, 3600)[0]}
        if last_seq is not None:
            frame["last_seq"] = last_seq
        await self.send(frame)
        welcome = await self.recv()
        assert welcome["t"] == "welcome", welcome
        return welcome


def msg_frames(to: str, count: int, body: str) -> list[dict[str, Any]]:
    """``count`` bus ``msg`` frames to ``to``, seqs 1..count, each with ``body``."""
    return [
        {"t": "msg", "id": f"m{i}", "seq": i, "kind": "p2p", "from": "z", "to": to, "body": body, "ts": 1}
        for i in range(1, count + 1)
    ]


class Client(LoginMixin):
    """A raw protocol client on a real socket: send frames, read frames, see the close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(1 << 24)
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, node: NodeServer) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        return cls(reader, writer)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_raw(encode(frame))

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame; raises ``Closed`` at EOF."""
        async with asyncio.timeout(timeout):
            while not self.frames:
                data = await self.reader.read(65536)
                if not data:
                    raise Closed
                self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    async def recv_msgs(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [await self.recv(timeout) for _ in range(n)]

    async def expect_closed(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Read until EOF; return the frames that came before it."""
        got = []
        try:
            while True:
                got.append(await self.recv(timeout))
        except Closed:
            return got
        except ConnectionResetError:
            return got

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (ConnectionError, TimeoutError):
            pass


class Inbox:
    """Store messages like the route does, and publish them to a node."""

    def __init__(self, redis: aioredis.Redis, nc: NatsClient, prefix: str) -> None:
        self.redis = redis
        self.nc = nc
        self.keys = Keys(prefix)
        self.scripts = Scripts.register(redis)

    async def store(self, user: str, n: int = 1, sender: str = "zed") -> list[dict[str, Any]]:
        """Store ``n`` p2p messages for ``user``; return their ``msg`` frames in seq order."""
        async with self.redis.pipeline(transaction=False) as pipe:
            packed = []
            for _ in range(n):
                msg_id = secrets.token_hex(8)
                body = f"hello {msg_id}"
                packed.append(inbox.pack_message(id=msg_id, kind="p2p", sender=sender, to=user, body=body))
                await inbox.store(
                    pipe,
                    self.scripts,
                    self.keys,
                    user=user,
                    packed=packed[-1],
                    msg_id=msg_id,
                    retention_s=3600,
                    retention_count=10000,
                )
            replies = await pipe.execute()
        return [
            inbox.msg_frame(p, s.seq, s.ts)
            for p, s in zip(packed, (inbox.parse_stored(r) for r in replies), strict=True)
        ]

    async def publish(self, node: NodeServer, frames: list[dict[str, Any]]) -> None:
        await self.nc.publish(bus.node_subject(node.id), bus.msgs(frames))
        await self.nc.flush()

    async def send(self, node: NodeServer, user: str, n: int = 1) -> list[dict[str, Any]]:
        frames = await self.store(user, n)
        await self.publish(node, frames)
        return frames


def node_settings(
    nats_service: Service, redis_service: Service, prefix: str, **overrides: Any
) -> NodeSettings:
    values: dict[str, Any] = {
        "secret": SECRET,
        "nats_url": nats_service.url,
        "redis_url": redis_service.url,
        "redis_prefix": prefix,
        "node_id": f"n-{secrets.token_hex(4)}",
        "node_port": 0,
        "registry_refresh_s": 1.0,
        "gap_wait_ms": 100,
        "ack_flush_ms": 100,
        **overrides,
    }
    return NodeSettings.from_env({}, **values)


@pytest.fixture
async def make_node(nats_service: Service, redis_service: Service, prefix: str) -> AsyncIterator[NodeFactory]:
    """Start nodes with settings overrides; all are stopped after the test."""
    started: list[NodeServer] = []

    async def factory(registry: MemoryRegistry | None = None, **overrides: Any) -> NodeServer:
        settings = node_settings(nats_service, redis_service, prefix, **overrides)
        node = NodeServer(settings, registry=registry or MemoryRegistry())
        started.append(node)
        await node.start()
        return node

    yield factory
    await asyncio.gather(*(n.stop(timeout=5) for n in started))


@pytest.fixture
async def node(make_node: NodeFactory) -> NodeServer:
    return await make_node()


@pytest.fixture
async def box(redis: aioredis.Redis, nc: NatsClient, prefix: str) -> Inbox:
    return Inbox(redis, nc, prefix)


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[NodeServer], Awaitable[Client]]]:
    """Open clients to a node; all closed after the test."""
    opened: list[Client] = []

    async def connect(node: NodeServer) -> Client:
        client = await Client.connect(node)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.close()
