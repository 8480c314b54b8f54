"""The connection state machine fed bytes through a fake transport: no sockets, no Redis, no NATS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cim_node.acks import AckCursors
from cim_node.connection import Connection, Phase
from cim_node.server import NodeServer
from shared.keys import Keys
from shared.protocol import FrameDecoder, encode
from shared.settings import NodeSettings
from tests.conftest import SECRET


class FakeTransport:
    """Records writes; ``buffered`` stands for the bytes the kernel did not take yet."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.reading = True
        self.closed = asyncio.Event()
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed.is_set(), "write after close"
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def close(self) -> None:
        self.closed.set()

    def abort(self) -> None:
        self.aborted = True
        self.closed.set()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def frames(self) -> list[dict[str, Any]]:
        return list(FrameDecoder(1 << 24).feed(b"".join(self.writes)))


def unit_node(**overrides: Any) -> NodeServer:
    settings = NodeSettings.from_env({}, secret=SECRET, node_id="unit", gap_wait_ms=60000, **overrides)
    node = NodeServer(settings)
    # Only the in-memory side of the ack cursors is used here (nothing flushes).
    node.acks = AckCursors(None, None, Keys(), retention_ms=1, interval_s=1, metrics=node.metrics)  # type: ignore[arg-type]
    return node


@pytest.fixture
def node() -> NodeServer:
    return unit_node()


def connect(node: NodeServer) -> tuple[Connection, FakeTransport]:
    conn = Connection(node)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def live(node: NodeServer, user: str = "alice", delivered: int = 0) -> tuple[Connection, FakeTransport]:
    """A connection as it is after login and replay (the Redis part is tested over sockets)."""
    conn, transport = connect(node)
    conn.user, conn.phase, conn.delivered = user, Phase.LIVE, delivered
    node.hub.register(conn)
    return conn, transport


def msg(seq: int, to: str = "alice", kind: str = "p2p") -> dict[str, Any]:
    return {
        "t": "msg",
        "id": f"m{seq}",
        "seq": seq,
        "kind": kind,
        "from": "z",
        "to": to,
        "body": "b",
        "ts": 1,
    }


async def turn() -> None:
    """Let the loop run the scheduled flushes."""
    await asyncio.sleep(0)


async def test_frame_split_across_chunks_then_refused(node: NodeServer) -> None:
    conn, transport = connect(node)
    for byte in encode({"t": "ping"}):
        conn.data_received(bytes([byte]))
    assert transport.closed.is_set() and not transport.aborted
    assert [f["code"] for f in transport.frames()] == ["not_logged_in"]
    conn.data_received(encode({"t": "ping"}))  # after the close: ignored
    assert len(transport.frames()) == 1
    conn.connection_lost(None)
    assert conn.phase is Phase.CLOSED and conn not in node.connections


async def test_garbage_is_bad_frame(node: NodeServer) -> None:
    conn, transport = connect(node)
    conn.data_received(b"\x00\x00\x00\x01\xc1")
    assert transport.frames()[0]["code"] == "bad_frame" and transport.closed.is_set()


async def test_login_timeout() -> None:
    node = unit_node(login_timeout_s=0.05)
    conn, transport = connect(node)
    await asyncio.wait_for(transport.closed.wait(), 2)
    assert transport.frames()[0]["code"] == "login_timeout"
    assert node.metrics.registry.get_sample_value("cim_node_logins_total", {"result": "timeout"}) == 1


async def test_bad_token_never_reaches_redis(node: NodeServer) -> None:
    conn, transport = connect(node)
    conn.data_received(encode({"t": "login", "token": 42}))
    assert transport.frames()[0]["code"] == "bad_token"
    assert conn.phase is Phase.CLOSED and node.hub.get("alice") is None


async def test_bad_last_seq(node: NodeServer) -> None:
    conn, transport = connect(node)
    conn.data_received(encode({"t": "login", "token": "t", "last_seq": -1}))
    assert transport.frames()[0]["code"] == "bad_frame"


async def test_writes_of_one_turn_are_one_transport_write(node: NodeServer) -> None:
    conn, transport = live(node)
    conn.data_received(encode({"t": "ping"}) + encode({"t": "ping"}))
    conn.deliver(msg(1))
    conn.deliver(msg(3))  # held: 2 is missing
    conn.deliver(msg(2))
    await turn()
    assert len(transport.writes) == 1
    frames = transport.frames()
    assert [f["t"] for f in frames] == ["pong", "pong", "msg", "msg", "msg"]
    assert [f["seq"] for f in frames[2:]] == [1, 2, 3]
    conn.close(release=False)


async def test_duplicates_dropped_and_seq0_written_at_once(node: NodeServer) -> None:
    conn, transport = live(node, delivered=5)
    conn.deliver(msg(4))
    conn.deliver(msg(5))
    conn.deliver(msg(0, kind="broadcast"))
    conn.deliver(msg(7))  # waits for 6 (a gap timer is armed)
    await turn()
    assert [(f["seq"], f["kind"]) for f in transport.frames()] == [(0, "broadcast")]
    assert conn.delivered == 5
    conn.deliver(msg(6))
    await turn()
    assert [f["seq"] for f in transport.frames()] == [0, 6, 7]
    conn.close(release=False)


async def test_ack_is_cumulative_and_clamped(node: NodeServer) -> None:
    conn, _ = live(node, delivered=10)
    conn.data_received(encode({"t": "ack", "seq": 4}) + encode({"t": "ack", "seq": 3}))
    assert conn.acked == 4
    conn.data_received(encode({"t": "ack", "seq": 50}))
    assert conn.acked == 10 and node.acks._dirty == {"alice": 10}
    conn.close(release=False)


async def test_slow_consumer_is_aborted_without_writing(node: NodeServer) -> None:
    conn, transport = live(node)
    transport.buffered = node.settings.write_buffer
    conn.deliver(msg(1))
    await turn()
    assert transport.aborted and transport.writes == []
    assert conn.phase is Phase.CLOSED and node.hub.get("alice") is None
    assert node.metrics.registry.get_sample_value("cim_node_slow_consumers_total") == 1


async def test_bye_closes_gracefully(node: NodeServer) -> None:
    conn, transport = live(node)
    conn.deliver(msg(1))
    conn.data_received(encode({"t": "bye"}))
    assert transport.closed.is_set() and not transport.aborted
    assert [f["seq"] for f in transport.frames()] == [1]  # queued frames went out before the close


async def test_kick_sends_kick_then_closes(node: NodeServer) -> None:
    conn, transport = live(node)
    assert node.hub.kick("alice", "logout", conn_id="other") is False
    assert node.hub.kick("alice", "nonsense") is False
    assert node.hub.kick("alice", "logout", conn_id=conn.conn_id) is True
    assert transport.frames() == [{"t": "kick", "reason": "logout"}]
    assert node.metrics.registry.get_sample_value("cim_node_kicks_total", {"reason": "logout"}) == 1
