"""WebSocket clients of a node (``/ws``): the same connection as TCP behind another transport.

A real ``websockets`` client on a loopback socket, binary (MessagePack) and text (JSON).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from cim_node.server import NodeServer
from shared import bus, tokens
from shared.keys import Keys
from tests.conftest import SECRET
from tests.harness import eventually
from tests.node.conftest import Client, Inbox, LoginMixin, NodeFactory, msg_frames

ORIGIN = "http://chat.example:8080"


class WsClient(LoginMixin):
    """One WebSocket client: frames as binary MessagePack or as JSON text."""

    def __init__(self, ws: ClientConnection, text: bool) -> None:
        self.ws = ws
        self.text = text

    @classmethod
    async def open(cls, node: NodeServer, text: bool = False, **kwargs: Any) -> WsClient:
        ws = await connect(_url(node), compression=None, max_size=None, open_timeout=5, **kwargs)
        return cls(ws, text)

    async def send(self, frame: Any) -> None:
        await self.ws.send(json.dumps(frame) if self.text else msgpack.packb(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(message, str) == self.text, f"answered in the other encoding: {message!r}"
        return json.loads(message) if self.text else msgpack.unpackb(message)

    async def recv_msgs(self, n: int) -> list[dict[str, Any]]:
        return [await self.recv() for _ in range(n)]

    async def expect_closed(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Read until the node closes; the frames that came before."""
        got = []
        try:
            while True:
                got.append(await self.recv(timeout))
        except websockets.ConnectionClosed:
            return got


def _url(node: NodeServer, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{node.ws_port}{path}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def ws_node(make_node: NodeFactory, **overrides: Any) -> NodeServer:
    return await make_node(node_ws_port=_free_port(), web_origins=(ORIGIN,), **overrides)


@pytest.fixture
async def node(make_node: NodeFactory) -> NodeServer:
    return await ws_node(make_node)


@pytest.fixture
async def wsc(node: NodeServer):
    opened: list[WsClient] = []

    async def open_client(text: bool = False, **kwargs: Any) -> WsClient:
        client = await WsClient.open(node, text, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.ws.close()


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["seq"] for f in frames]


async def test_the_registry_record_carries_the_websocket_port(node: NodeServer) -> None:
    info = node.info()
    assert info.ws_port == node.ws_port and info.ws_url == f"ws://127.0.0.1:{node.ws_port}/ws"


@pytest.mark.parametrize("text", [False, True], ids=["binary", "json"])
async def test_login_replay_live_ack_and_ping(node: NodeServer, wsc, box: Inbox, redis, prefix, text) -> None:
    stored = await box.store("alice", 3)
    c = await wsc(text=text)
    welcome = await c.login("alice")
    assert welcome == {"t": "welcome", "user": "alice", "node": node.id, "heartbeat_s": 30, "last_seq": 0}
    live = await box.send(node, "alice", 2)
    got = await c.recv_msgs(5)
    assert got == stored + live  # replay first, then live, each as one message in order
    await c.send({"t": "ack", "seq": 4})
    await c.send({"t": "ping"})
    assert await c.recv() == {"t": "pong"}
    key = Keys(prefix).ack("alice")

    async def acked() -> bool:
        return await redis.get(key) == b"4"

    await eventually(acked, timeout=3, what="ack cursor 4")


async def test_answers_follow_the_encoding_of_the_login(node: NodeServer, wsc, box: Inbox) -> None:
    c = await wsc(text=True)
    await c.login("alice")
    await c.ws.send(msgpack.packb({"t": "ping"}))  # a binary frame later still gets JSON back
    assert await c.recv() == {"t": "pong"}


@pytest.mark.parametrize("text", [False, True], ids=["binary", "json"])
async def test_a_message_in_fragments_is_one_frame(node: NodeServer, wsc, text: bool) -> None:
    c = await wsc(text=text)
    login = {"t": "login", "token": tokens.issue(SECRET, "alice", 60)[0]}
    data = json.dumps(login) if text else msgpack.packb(login)
    await c.ws.send([data[:5], data[5:20], data[20:]])  # three frames: first, continuation, last
    assert (await c.recv())["t"] == "welcome"
    await c.send({"t": "ping"})
    assert await c.recv() == {"t": "pong"}


async def test_unicode_bodies_survive_json(node: NodeServer, wsc, box: Inbox) -> None:
    c = await wsc(text=True)
    await c.login("alice")
    frames = await box.store("alice", 1)
    frame = {**frames[0], "body": 'héllo 👋 "quoted" \n next'}
    await box.publish(node, [frame])
    assert await c.recv() == frame


@pytest.mark.parametrize("size", [100, 1000, 70_000])  # the three header lengths of RFC 6455
async def test_messages_of_every_size_arrive_whole(node: NodeServer, wsc, box: Inbox, size: int) -> None:
    c = await wsc()
    await c.login("alice")
    frames = await box.store("alice", 2)
    big = [{**frames[0], "body": "x" * size}, frames[1]]
    await box.publish(node, big)
    assert await c.recv_msgs(2) == big


async def test_duplicate_login_kicks_the_older_over_either_transport(node: NodeServer, wsc, clients) -> None:
    first = await wsc(text=True)
    await first.login("alice")
    second = await wsc()
    await second.login("alice")
    assert await first.expect_closed() == [{"t": "kick", "reason": "duplicate_login"}]
    tcp = await clients(node)
    await tcp.login("alice")
    assert await second.expect_closed() == [{"t": "kick", "reason": "duplicate_login"}]
    assert node.hub.get("alice") is not None


BAD_INPUT = [
    pytest.param(False, msgpack.packb([1, 2]), "bad_frame", id="binary-non-map"),
    pytest.param(False, b"\xc1\x00garbage", "bad_frame", id="binary-not-msgpack"),
    pytest.param(True, "[1, 2]", "bad_frame", id="json-non-map"),
    pytest.param(True, "{not json", "bad_frame", id="text-not-json"),
    pytest.param(False, msgpack.packb({"t": "shout"}), "unknown_type", id="unknown-type"),
    pytest.param(False, msgpack.packb({"t": "ping"}), "not_logged_in", id="ping-before-login"),
    pytest.param(False, b"\x81\xa1t\xa4ping" + b"\x00" * 70000, "frame_too_large", id="oversize"),
]


@pytest.mark.parametrize(("text", "payload", "code"), BAD_INPUT)
async def test_bad_input_closes_that_connection_only(node: NodeServer, wsc, text, payload, code) -> None:
    bystander = await wsc()
    await bystander.login("bystander")
    bad = await wsc(text=text)
    if code != "not_logged_in":
        await bad.login("mallory")
    await bad.ws.send(payload)
    frames = await bad.expect_closed()
    assert [(f["t"], f["code"]) for f in frames] == [("error", code)], frames
    await bystander.send({"t": "ping"})
    assert await bystander.recv() == {"t": "pong"}


async def test_origin_is_checked_in_the_handshake(node: NodeServer, wsc) -> None:
    browser = await wsc(text=True, origin=ORIGIN)
    assert (await browser.login("alice"))["user"] == "alice"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await wsc(origin="http://evil.example")
    assert refused.value.response.status_code == 403
    tool = await wsc()  # no Origin header: not a browser, not checked
    assert (await tool.login("bob"))["user"] == "bob"


async def test_only_the_ws_path_is_served(node: NodeServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(_url(node, "/other"), open_timeout=5)
    assert refused.value.response.status_code == 404


async def test_a_socket_that_never_completes_the_handshake_is_closed(make_node: NodeFactory) -> None:
    node = await ws_node(make_node, login_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.ws_port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    try:
        async with asyncio.timeout(5):
            assert await reader.read() == b""
    finally:
        writer.close()
    await eventually(lambda: _empty(node), timeout=3, what="no connection left")


async def _empty(node: NodeServer) -> bool:
    return not node.connections


async def test_login_deadline_after_the_handshake(make_node: NodeFactory) -> None:
    node = await ws_node(make_node, login_timeout_s=0.3)
    c = await WsClient.open(node)
    frames = await c.expect_closed()
    assert [(f["t"], f["code"]) for f in frames] == [("error", "login_timeout")]


async def test_slow_reader_is_cut_off(make_node: NodeFactory, nc, box: Inbox) -> None:
    node = await ws_node(make_node, write_buffer=65536)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", node.ws_port))
    sock.setblocking(False)
    # max_queue=1: the client stops reading the socket once one message waits unread
    slow = WsClient(await connect(_url(node), sock=sock, max_queue=1, compression=None, max_size=None), False)
    fast = await Client.connect(node)
    try:
        await slow.login("slow")
        await fast.login("fast")
        frames = msg_frames("slow", 400, "x" * 8000)
        for i in range(0, len(frames), 100):
            await nc.publish(bus.node_subject(node.id), bus.msgs(frames[i : i + 100]))
        await nc.flush()

        async def cut_off() -> bool:
            return node.metrics.registry.get_sample_value("cim_node_slow_consumers_total") == 1

        await eventually(cut_off, timeout=5, what="slow consumer closed")
        assert node.hub.get("slow") is None
        live = await box.send(node, "fast", 2)
        assert await fast.recv_msgs(2) == live
    finally:
        await slow.ws.close()
        await fast.close()
