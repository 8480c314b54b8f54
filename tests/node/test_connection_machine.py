"""The connection state machine fed bytes through a fake transport: no sockets, no Redis, no NATS.

A connection gets a ``NodeContext`` built here (no server), whose session store
is an in-memory stand-in; the store's Redis side has its own tests over sockets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import SlotNotCoveredError

from cim_node.acks import AckCursors
from cim_node.connection import Connection, Phase
from cim_node.context import NodeContext
from cim_node.hub import Hub
from cim_node.metrics import NodeMetrics
from cim_node.sweeper import Sweeper
from shared import tokens
from shared.bus import Item
from shared.keys import Keys
from shared.protocol import FrameDecoder, encode
from shared.sessions import Ended
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


class MemoryStore:
    """The session store's answers, from memory: an inbox per user, revoked token ids."""

    def __init__(self) -> None:
        self.inbox: dict[str, list[dict[str, Any]]] = {}
        self.revoked: set[str] = set()
        self.sessions: dict[str, str] = {}
        self.gate: asyncio.Event | None = None
        """When set, inbox reads wait for it (to deliver during a replay)."""

    async def login_state(self, user: str, device: str, token: tokens.Token) -> tuple[bool, int]:
        return token.jti in self.revoked, 0

    async def claim(self, user: str, device: str, conn_id: str) -> list[Ended]:
        old = self.sessions.get(user)
        self.sessions[user] = conn_id
        return [Ended("unit", old, device, "duplicate_login")] if old else []

    async def release(self, user: str, device: str, conn_id: str) -> bool:
        if self.sessions.get(user) != conn_id:
            return False
        del self.sessions[user]
        return True

    async def read_after(self, user: str, after_seq: int, count: int) -> list[dict[str, Any]]:
        if self.gate is not None:
            await self.gate.wait()
        return [f for f in self.inbox.get(user, []) if f["seq"] > after_seq][:count]


def unit_context(**overrides: Any) -> NodeContext:
    values: dict[str, Any] = {"secret": SECRET, "node_id": "unit", "gap_wait_ms": 60000, **overrides}
    settings = NodeSettings.from_env({}, **values)
    loop = asyncio.get_running_loop()
    metrics = NodeMetrics()
    # Only the in-memory side of the ack cursors is used here (nothing flushes).
    acks = AckCursors(None, None, Keys(), retention_ms=1, interval_s=1, metrics=metrics)  # type: ignore[arg-type]
    tasks: set[asyncio.Task] = set()

    def spawn(coro: Any) -> asyncio.Task:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def no_remote_kick(user: str, old: Ended) -> None:
        raise AssertionError("no other node here")

    return NodeContext(
        settings=settings,
        loop=loop,
        hub=Hub(),
        acks=acks,
        metrics=metrics,
        store=MemoryStore(),  # type: ignore[arg-type]
        sweeper=Sweeper(0.01, loop.time),
        spawn=spawn,
        kick_remote=no_remote_kick,
        refusing=lambda: False,
        stopping=lambda: False,
    )


@pytest.fixture
async def ctx() -> NodeContext:
    return unit_context()


def connect(ctx: NodeContext) -> tuple[Connection, FakeTransport]:
    conn = Connection(ctx)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


async def live(ctx: NodeContext, user: str = "alice", delivered: int = 0) -> tuple[Connection, FakeTransport]:
    """A connection logged in through the machine (welcome, empty replay), ``delivered`` given."""
    conn, transport = connect(ctx)
    conn.data_received(
        encode({"t": "login", "token": tokens.issue(SECRET, user, 60)[0], "last_seq": delivered})
    )
    await asyncio.wait_for(until(lambda: conn.phase is Phase.LIVE and not conn._syncing), 2)
    transport.writes.clear()
    return conn, transport


async def until(check: Any) -> None:
    """Let the loop run until ``check()`` holds (callers bound it with a timeout)."""
    while not check():  # noqa: ASYNC110 - the state machine has no event for each of its states
        await asyncio.sleep(0)


def frame(seq: int, to: str = "alice", kind: str = "p2p") -> dict[str, Any]:
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


def msg(seq: int, to: str = "alice", kind: str = "p2p") -> Item:
    """A delivery as the bus brings it: the frame encoded once, by the route."""
    return Item(to, seq, 1, kind, encode(frame(seq, to, kind)))


async def turn() -> None:
    """Let the loop run the scheduled flushes."""
    await asyncio.sleep(0)


def sample(ctx: NodeContext, name: str, labels: dict[str, str] | None = None) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels or {})


async def test_frame_split_across_chunks_then_refused(ctx: NodeContext) -> None:
    conn, transport = connect(ctx)
    for byte in encode({"t": "ping"}):
        conn.data_received(bytes([byte]))
    assert transport.closed.is_set() and not transport.aborted
    assert [f["code"] for f in transport.frames()] == ["not_logged_in"]
    conn.data_received(encode({"t": "ping"}))  # after the close: ignored
    assert len(transport.frames()) == 1
    conn.connection_lost(None)
    assert conn.phase is Phase.CLOSED and conn not in ctx.connections


async def test_garbage_is_bad_frame(ctx: NodeContext) -> None:
    conn, transport = connect(ctx)
    conn.data_received(b"\x00\x00\x00\x01\xc1")
    assert transport.frames()[0]["code"] == "bad_frame" and transport.closed.is_set()


async def test_login_then_replay_then_live(ctx: NodeContext) -> None:
    store = ctx.store
    store.inbox["alice"] = [frame(1), frame(2), frame(3)]  # type: ignore[attr-defined]
    store.gate = gate = asyncio.Event()  # type: ignore[attr-defined]
    conn, transport = connect(ctx)
    token = tokens.issue(SECRET, "alice", 60)[0]
    conn.data_received(encode({"t": "login", "token": token, "last_seq": 1}) + encode({"t": "ping"}))
    assert conn.phase is Phase.LOGGING_IN and not transport.reading
    await asyncio.wait_for(until(lambda: ctx.hub.get("alice") is conn), 2)
    conn.deliver(msg(4))  # live during the replay: held, written after it
    conn.deliver(msg(3))
    gate.set()
    await asyncio.wait_for(until(lambda: not conn._syncing and conn.phase is Phase.LIVE), 2)
    await turn()
    frames = transport.frames()
    assert frames[0] == {"t": "welcome", "user": "alice", "node": "unit", "heartbeat_s": 30, "last_seq": 1}
    assert frames[1] == {"t": "pong"}  # the ping that came right behind the login
    assert [f["seq"] for f in frames[2:]] == [2, 3, 4]
    assert transport.reading and ctx.hub.get("alice") is conn
    assert ctx.store.sessions == {"alice": conn.conn_id}  # type: ignore[attr-defined]
    assert sample(ctx, "cim_node_logins_total", {"result": "ok"}) == 1
    conn.close()
    await asyncio.wait_for(until(lambda: not ctx.store.sessions), 2)  # type: ignore[attr-defined]


async def test_revoked_token_is_refused(ctx: NodeContext) -> None:
    token, claims = tokens.issue(SECRET, "alice", 60)
    ctx.store.revoked.add(claims.jti)  # type: ignore[attr-defined]
    conn, transport = connect(ctx)
    conn.data_received(encode({"t": "login", "token": token}))
    await asyncio.wait_for(transport.closed.wait(), 2)
    assert transport.frames() == [{"t": "error", "code": "bad_token", "reason": "token revoked"}]
    assert ctx.hub.get("alice") is None


async def test_login_deadline_closes_a_silent_socket() -> None:
    ctx = unit_context(login_timeout_s=0.05)
    conn, transport = connect(ctx)
    ctx.sweeper.sweep(ctx.loop.time() + 0.04)
    assert not transport.closed.is_set()
    ctx.sweeper.sweep(ctx.loop.time() + 0.06)
    assert transport.frames()[0]["code"] == "login_timeout" and transport.closed.is_set()
    assert sample(ctx, "cim_node_logins_total", {"result": "timeout"}) == 1


async def test_login_deadline_on_the_running_wheel() -> None:
    ctx = unit_context(login_timeout_s=0.05)
    sweeping = asyncio.ensure_future(ctx.sweeper.run())
    try:
        conn, transport = connect(ctx)
        await asyncio.wait_for(transport.closed.wait(), 2)
        assert transport.frames()[0]["code"] == "login_timeout"
    finally:
        sweeping.cancel()


async def test_silence_of_three_heartbeats_closes() -> None:
    ctx = unit_context(heartbeat_s=1)
    conn, transport = await live(ctx)
    start = conn._last_rx  # the login; the wheel runs on a clock the test moves
    ctx.sweeper.sweep(start + 2.9)
    assert conn.phase is Phase.LIVE
    ctx.sweeper.sweep(start + 3.01)
    assert conn.phase is Phase.CLOSED and transport.closed.is_set() and not transport.aborted
    assert ctx.hub.get("alice") is None and conn not in ctx.connections


async def test_a_frame_restarts_the_silence() -> None:
    ctx = unit_context(heartbeat_s=1)
    conn, transport = await live(ctx)
    start = conn._last_rx
    await asyncio.sleep(0.05)  # time passes, then the client pings
    conn.data_received(encode({"t": "ping"}))
    ctx.sweeper.sweep(start + 3.02)
    assert conn.phase is Phase.LIVE
    ctx.sweeper.sweep(start + 3.2)
    assert conn.phase is Phase.CLOSED


async def test_bad_token_never_reaches_redis(ctx: NodeContext) -> None:
    conn, transport = connect(ctx)
    conn.data_received(encode({"t": "login", "token": 42}))
    assert transport.frames()[0]["code"] == "bad_token"
    assert conn.phase is Phase.CLOSED and ctx.hub.get("alice") is None


async def test_bad_last_seq(ctx: NodeContext) -> None:
    conn, transport = connect(ctx)
    conn.data_received(encode({"t": "login", "token": "t", "last_seq": -1}))
    assert transport.frames()[0]["code"] == "bad_frame"


async def test_writes_of_one_turn_are_one_transport_write(ctx: NodeContext) -> None:
    conn, transport = await live(ctx)
    conn.data_received(encode({"t": "ping"}) + encode({"t": "ping"}))
    conn.deliver(msg(1))
    conn.deliver(msg(3))  # held: 2 is missing
    conn.deliver(msg(2))
    await turn()
    assert len(transport.writes) == 1
    frames = transport.frames()
    assert [f["t"] for f in frames] == ["pong", "pong", "msg", "msg", "msg"]
    assert frames[2:] == [frame(1), frame(2), frame(3)]  # intact, in order
    conn.close(release=False)


async def test_many_frames_of_one_turn_arrive_intact_and_in_order(ctx: NodeContext) -> None:
    conn, transport = await live(ctx)
    for seq in range(1, 301):
        conn.deliver(msg(seq))
    conn.deliver(msg(0, kind="broadcast"))
    await turn()
    assert len(transport.writes) == 1
    assert transport.frames() == [frame(s) for s in range(1, 301)] + [frame(0, kind="broadcast")]
    conn.deliver(msg(301))
    await turn()
    assert len(transport.writes) == 2 and transport.frames()[-1] == frame(301)
    conn.close(release=False)


async def test_a_fan_out_writes_each_connection_once_per_turn(ctx: NodeContext) -> None:
    links = [await live(ctx, f"u{i}") for i in range(50)]
    for i, (conn, _) in enumerate(links):
        conn.deliver(msg(1, f"u{i}"))
        conn.deliver(msg(2, f"u{i}"))
    gone, _ = links[0]
    gone.close(release=False)  # written at its close, not again by the end-of-turn flush
    await turn()
    for i, (conn, transport) in enumerate(links):
        assert len(transport.writes) == 1 and transport.frames() == [frame(1, f"u{i}"), frame(2, f"u{i}")]
        conn.close(release=False)


async def test_duplicates_dropped_and_seq0_written_at_once(ctx: NodeContext) -> None:
    conn, transport = await live(ctx, delivered=5)
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


async def test_a_gap_is_filled_from_the_inbox_after_the_wait() -> None:
    ctx = unit_context(gap_wait_ms=20)
    conn, transport = await live(ctx)
    ctx.store.inbox["alice"] = [frame(1), frame(2), frame(3)]  # type: ignore[attr-defined]
    conn.deliver(msg(1))
    conn.deliver(msg(3))  # 2 was lost on the way: the inbox has it
    await asyncio.wait_for(until(lambda: conn.delivered == 3), 2)
    await turn()
    assert transport.frames() == [frame(1), frame(2), frame(3)]
    conn.close(release=False)


@pytest.mark.parametrize("error", [SlotNotCoveredError, ConnectionError])
async def test_a_gap_read_that_fails_closes_the_connection_for_a_replay(error: type[Exception]) -> None:
    """A Redis Cluster in failover raises errors that are not ``RedisError`` (a slot not
    covered): the connection closes (the client logs in again and replays) instead of holding
    every later message forever."""
    ctx = unit_context(gap_wait_ms=20)
    conn, transport = await live(ctx)

    async def read_fails(user: str, after_seq: int, count: int) -> list[dict[str, Any]]:
        raise error("slot 5 is not covered")

    ctx.store.read_after = read_fails  # type: ignore[method-assign]
    conn.deliver(msg(1))
    conn.deliver(msg(3))  # 2 is missing: the gap read fails
    await asyncio.wait_for(transport.closed.wait(), 2)
    assert conn.phase is Phase.CLOSED


async def test_ack_is_cumulative_and_clamped(ctx: NodeContext) -> None:
    conn, _ = await live(ctx, delivered=10)
    conn.data_received(encode({"t": "ack", "seq": 4}) + encode({"t": "ack", "seq": 3}))
    assert conn.acked == 4
    conn.data_received(encode({"t": "ack", "seq": 50}))
    assert conn.acked == 10 and ctx.acks._dirty == {("alice", "default"): 10}
    conn.close(release=False)


async def test_slow_consumer_is_aborted_without_writing(ctx: NodeContext) -> None:
    conn, transport = await live(ctx)
    transport.buffered = ctx.settings.write_buffer
    conn.deliver(msg(1))
    await turn()
    assert transport.aborted and transport.writes == []
    assert conn.phase is Phase.CLOSED and ctx.hub.get("alice") is None
    assert sample(ctx, "cim_node_slow_consumers_total") == 1


async def test_bye_closes_gracefully(ctx: NodeContext) -> None:
    conn, transport = await live(ctx)
    conn.deliver(msg(1))
    conn.data_received(encode({"t": "bye"}))
    assert transport.closed.is_set() and not transport.aborted
    assert [f["seq"] for f in transport.frames()] == [1]  # queued frames went out before the close


async def test_kick_sends_kick_then_closes(ctx: NodeContext) -> None:
    conn, transport = await live(ctx)
    assert ctx.hub.kick("alice", "logout", conn_id="other") is False
    assert ctx.hub.kick("alice", "nonsense") is False
    assert ctx.hub.kick("alice", "logout", conn_id=conn.conn_id) is True
    assert transport.frames() == [{"t": "kick", "reason": "logout"}]
    assert sample(ctx, "cim_node_kicks_total", {"reason": "logout"}) == 1


async def test_a_newer_login_of_the_user_kicks_the_older(ctx: NodeContext) -> None:
    old, old_transport = await live(ctx)
    new, _ = await live(ctx)
    assert old_transport.frames() == [{"t": "kick", "reason": "duplicate_login"}]
    assert ctx.hub.get("alice") is new
    await asyncio.wait_for(until(lambda: ctx.store.sessions == {"alice": new.conn_id}), 2)  # type: ignore[attr-defined]
    new.close(release=False)
