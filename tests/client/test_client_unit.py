"""SDK logic against a tiny fake node (asyncio server speaking shared.protocol) and a mock route.

The real-cluster behaviour is in test_client.py; these tests pin what a real node
cannot be made to do on demand: duplicate frames, a chosen kick, 503 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest

from cim_client import AdminClient, CimApiError, Client, ConnectionClosed, ConnectionState, Message
from shared.protocol import FrameDecoder, encode


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
    """httpx.MockTransport handler: /login points at the fake node; other answers are scripted."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.calls: list[tuple[str, str, Any]] = []
        self.scripted: dict[str, list[httpx.Response]] = {}

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


@pytest.fixture
async def node() -> Any:
    fake = FakeNode()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def route(node: FakeNode) -> FakeRoute:
    return FakeRoute(node)


def make_client(route: FakeRoute, **kwargs: Any) -> Client:
    http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    kwargs.setdefault("backoff_min", 0.01)
    client = Client("http://route.test", "alice", "password123", http=http, **kwargs)
    client._own_http = True  # close the mock client with the SDK one
    return client


async def test_receive_dedupe_and_batched_ack(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    try:
        assert client.state is ConnectionState.READY
        assert "last_seq" not in node.logins[0]  # first login: the server-side cursor decides
        writer = await node.conns.get()
        for seq in (1, 2, 2, 1, 3):
            writer.write(encode(msg(seq)))
        got = [await client.next_message(5) for _ in range(3)]
        assert [m.seq for m in got] == [1, 2, 3]
        assert got[0] == Message("m1", 1, "p2p", "bob", "alice", "hi", 1001)
        assert client.duplicates_dropped == 2
        assert client.last_seq == 3
        ack = await node.next_received("ack")
        assert ack == {"t": "ack", "seq": 3}  # one cumulative ack for the batch
    finally:
        await client.close()


async def test_unstored_messages_are_never_deduped(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(0, "a")) + encode(msg(0, "b")))
        assert [(await client.next_message(5)).body for _ in range(2)] == ["a", "b"]
        assert client.duplicates_dropped == 0
    finally:
        await client.close()


async def test_reconnect_sends_last_seq_and_reports_states(node: FakeNode, route: FakeRoute) -> None:
    states: list[tuple[ConnectionState, float | None]] = []
    client = make_client(route, on_state=lambda s, d: states.append((s, d)))
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(1)) + encode(msg(2)))
        assert (await client.next_message(5)).seq == 1
        assert (await client.next_message(5)).seq == 2
        writer.close()  # the node goes away
        writer = await asyncio.wait_for(node.conns.get(), 5)
        assert node.logins[-1]["last_seq"] == 2
        writer.write(encode(msg(2)) + encode(msg(3)))  # a replay overlapping what we hold
        assert (await client.next_message(5)).seq == 3
        assert client.duplicates_dropped == 1
        assert [s for s, _ in states] == ["connecting", "ready", "reconnecting", "ready"]
        assert states[2][1] is not None and states[2][1] >= 0
        assert sum(1 for call in route.calls if call[1] == "/api/v1/login") == 2  # through the route again
    finally:
        await client.close()
    assert states[-1][0] is ConnectionState.CLOSED


async def test_drain_kick_reconnects_at_once(node: FakeNode, route: FakeRoute) -> None:
    states: list[tuple[ConnectionState, float | None]] = []
    client = make_client(route, on_state=lambda s, d: states.append((s, d)), backoff_min=5.0)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode({"t": "kick", "reason": "drain"}))
        await asyncio.wait_for(node.conns.get(), 2)  # well before a 5 s backoff
        assert (ConnectionState.RECONNECTING, 0.0) in states
    finally:
        await client.close()


@pytest.mark.parametrize("reason", ["duplicate_login", "logout", "revoked"])
async def test_final_kick_closes(node: FakeNode, route: FakeRoute, reason: str) -> None:
    kicks: list[str] = []
    client = make_client(route, on_kick=kicks.append)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(1)) + encode({"t": "kick", "reason": reason}))
        seen = [m.seq async for m in client.messages()]  # ends when the session does
        assert seen == [1]
        assert client.state is ConnectionState.CLOSED
        assert kicks == [reason]
        assert client.close_reason == reason
        with pytest.raises(ConnectionClosed):
            await client.next_message(1)
        assert len(node.logins) == 1
    finally:
        await client.close()


async def test_heartbeat_pings(route: FakeRoute, node: FakeNode) -> None:
    node.heartbeat_s = 0.05
    client = make_client(route)
    await client.connect()
    try:
        await node.next_received("ping", timeout=2)
        await node.next_received("ping", timeout=2)
        assert client.state is ConnectionState.READY
    finally:
        await client.close()


async def test_close_says_bye_and_is_idempotent(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    await client.close()
    assert (await node.next_received("bye"))["t"] == "bye"
    await client.close()
    assert client.state is ConnectionState.CLOSED


async def test_on_message_callback_and_ack(node: FakeNode, route: FakeRoute) -> None:
    got: list[Message] = []

    async def on_message(m: Message) -> None:
        got.append(m)

    client = make_client(route, on_message=on_message)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(b"".join(encode(msg(s)) for s in range(1, 61)))
        ack = await node.next_received("ack")
        assert ack["seq"] >= 50
        with contextlib.suppress(TimeoutError):
            while (await node.next_received("ack", timeout=1))["seq"] < 60:
                pass
        assert [m.seq for m in got] == list(range(1, 61))
    finally:
        await client.close()


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


async def test_bad_credentials_on_connect_raise(node: FakeNode, route: FakeRoute) -> None:
    route.scripted["/api/v1/login"] = [httpx.Response(401, json={"error": "bad_credentials", "detail": "no"})]
    client = make_client(route)
    with pytest.raises(CimApiError) as info:
        await client.connect()
    assert info.value.code == "bad_credentials"
    assert client.state is ConnectionState.CLOSED
    await client.close()


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


async def test_connect_again_after_a_final_kick(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(1)) + encode({"t": "kick", "reason": "duplicate_login"}))
        assert (await client.next_message(5)).seq == 1
        await client.wait_for_state(ConnectionState.CLOSED, 5)
        await client.connect()
        assert node.logins[-1]["last_seq"] == 1
        writer = await node.conns.get()
        writer.write(encode(msg(2)))
        assert (await client.next_message(5)).seq == 2  # the old session's end mark is skipped
        assert client.close_reason is None
    finally:
        await client.close()
