"""One client link: frames in, batched writes out, login, heartbeat, replay and gap fill.

Phases: ``NEW`` (waiting for ``login``, at most ``login_timeout_s``) ->
``LOGGING_IN`` (token checked, Redis asked; reading paused) -> ``LIVE`` ->
``CLOSED``. Any refused frame gets an ``error`` frame and closes this
connection only.

Ordering (the delivery contract): at login the connection enters the hub
BEFORE its session is claimed, so a live message published as soon as the
route sees the session finds the connection; while a sync (the replay, a gap
fill, a re-sync after a NATS reconnect) reads the inbox, live messages are
held and merged by seq afterwards. ``delivered`` is the highest seq written;
a seq at or below it is a duplicate, a seq above ``delivered + 1`` waits
``gap_wait_ms`` for the missing ones, then the inbox fills the gap. Re-reading
the inbox is always right because the route stores a message before it
publishes it, and seq n is stored only after seq n-1.

The seq bookkeeping itself is ``SeqOrder`` (``cim_node.ordering``); the login
deadline and the heartbeat silence are deadlines in the node's one
``Sweeper``, not a timer per connection. A ``msg`` frame arrives encoded from
the bus and is written as it came.

Writes go to a list joined into one ``transport.write`` per loop turn. A
connection whose unsent bytes would pass ``write_buffer`` is aborted (slow
consumer): its messages stay in the inbox for its next login.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import time
from typing import Any, cast

from cim_node.context import NodeContext
from cim_node.ordering import HeldFull, SeqOrder
from shared import tokens
from shared.bus import Item, owner
from shared.errors import FrameError, TokenError
from shared.protocol import (
    ErrorCode,
    FrameDecoder,
    FrameType,
    KickReason,
    check_client_frame,
    encode,
    error_frame,
    kick_frame,
)
from shared.scripts import REDIS_FAILURES
from shared.sessions import Ended

__all__ = ["Connection", "Phase"]

log = logging.getLogger(__name__)

REPLAY_PAGE = 200
"""Inbox entries per read while syncing."""
MAX_HELD = 1024
"""Live messages held per connection while syncing or waiting for a gap; beyond, re-read the inbox."""
CLOSE_GRACE_S = 5.0
"""After a graceful close, a peer that does not read its last frames is aborted."""

_PONG = encode({"t": FrameType.PONG.value})


class Phase(enum.IntEnum):
    NEW = 0
    LOGGING_IN = 1
    LIVE = 2
    CLOSED = 3


class Connection(asyncio.Protocol):
    """The node's side of one TCP client (an ``asyncio.Protocol``, one per socket)."""

    __slots__ = (
        "ctx",
        "conn_id",
        "user",
        "device",
        "phase",
        "acked",
        "transport",
        "_decoder",
        "_inbuf",
        "_out",
        "_out_size",
        "_queued",
        "_timer",
        "_last_rx",
        "_task",
        "_order",
        "_syncing",
        "_resync",
        "_writable",
        "_pending",
    )

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.conn_id = ctx.next_conn_id()
        self.user = ""
        self.device = ""
        self.phase = Phase.NEW
        self.acked = 0
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(ctx.settings.max_frame)
        self._inbuf = b""
        self._out: list[bytes] = []
        self._out_size = 0
        self._queued = False
        """Whether this connection waits in ``ctx.flushes`` for the end of the loop turn."""
        self._timer: asyncio.TimerHandle | None = None
        """The gap wait while live; the close grace once closed."""
        self._last_rx = 0.0
        self._task: asyncio.Task | None = None
        self._order: SeqOrder[Item] | None = None
        """Created at login, with the seq the replay starts after."""
        self._syncing = False
        self._resync = False
        self._writable: asyncio.Event | None = None
        self._pending: str | None = None
        """The client's address while it counts as a pending login (``ctx.pending``)."""

    def __repr__(self) -> str:
        return f"<Connection {self.conn_id} user={self.user or '-'}/{self.device or '-'} {self.phase.name}>"

    @property
    def delivered(self) -> int:
        """The highest seq written to this client (0 before login)."""
        return self._order.delivered if self._order is not None else 0

    # ----- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ctx = self.ctx
        # uvloop's TCPTransport does not subclass asyncio.Transport; it has the same methods.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if not ctx.pending.admit(address):
            ctx.metrics.logins.labels("too_many_pending").inc()
            self.phase = Phase.CLOSED
            self.transport.abort()
            return
        self._pending = address
        # Above half the hard limit the replay waits for the peer to read (pause_writing).
        self.transport.set_write_buffer_limits(high=ctx.settings.write_buffer // 2)
        # The kernel's send buffer is bounded too: autotuned (up to 4 MB on Linux), it would
        # hide a reader that takes nothing and hold that much per connection.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, ctx.settings.write_buffer)
        self._last_rx = now = ctx.loop.time()  # until the login: when the socket came
        settings = ctx.settings
        ctx.sweeper.add(self, now + min(settings.login_timeout_s, 3 * settings.heartbeat_s))
        ctx.connections.add(self)
        ctx.metrics.connections.inc()

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase is Phase.LIVE:
            self._last_rx = self.ctx.loop.time()
        elif phase is Phase.LOGGING_IN:
            self._inbuf += data  # reading is paused; keep a chunk already in flight
            return
        self._process(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.phase is Phase.CLOSED:
            self._cancel_timer()
        else:
            self._shutdown(release=True, how="lost")
        if self._writable is not None:
            self._writable.set()

    def pause_writing(self) -> None:
        self._writable = asyncio.Event()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set()
            self._writable = None

    # ----- deadlines (called by the node's Sweeper) -------------------------------

    def expire(self, now: float) -> float | None:
        """The login deadline or the heartbeat silence passed: close, or say when to look again."""
        if self.phase is Phase.CLOSED:
            return None
        settings = self.ctx.settings
        if self.phase is not Phase.LIVE:
            deadline = self._last_rx + settings.login_timeout_s
            if now < deadline:
                return deadline
            self.ctx.metrics.logins.labels("timeout").inc()
            self.fail(ErrorCode.LOGIN_TIMEOUT, f"no login within {settings.login_timeout_s:g}s")
            return None
        limit = 3 * settings.heartbeat_s
        idle = now - self._last_rx
        if idle < limit:
            return self._last_rx + limit
        log.info(
            "idle user=%s node=%s conn=%s for %.1fs: closed", self.user, self.ctx.node_id, self.conn_id, idle
        )
        self.close()
        return None

    # ----- frames in --------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        try:
            for frame in self._decoder.feed(data):
                self._on_frame(frame)
                if self.phase is not Phase.LIVE:  # a login started (the rest waits) or closed
                    break
        except FrameError as exc:
            self.fail(exc.code, exc.detail)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = check_client_frame(frame)
        self.ctx.metrics.frame_in(kind)  # a StrEnum: counted under its value
        if kind is FrameType.ACK and self.phase is Phase.LIVE:  # the most frequent frame first
            self._on_ack(frame)
        elif self.phase is Phase.NEW:
            if kind is not FrameType.LOGIN:
                raise FrameError(ErrorCode.NOT_LOGGED_IN, "the first frame must be login")
            self._start_login(frame)
        elif kind is FrameType.PING:
            self._write(_PONG)
        elif kind is FrameType.BYE:
            log.info("bye user=%s node=%s conn=%s", self.user, self.ctx.node_id, self.conn_id)
            self.close()
        else:
            raise FrameError(ErrorCode.BAD_FRAME, "already logged in")

    def _on_ack(self, frame: dict[str, Any]) -> None:
        seq = _seq_field(frame, "seq")
        if seq is None:
            raise FrameError(ErrorCode.BAD_FRAME, "ack needs an integer seq >= 0")
        seq = min(seq, self.delivered)  # one cannot hold what was never written
        if seq > self.acked:
            self.acked = seq
            self.ctx.acks.mark(self.user, self.device, seq)

    # ----- login ------------------------------------------------------------------

    def _start_login(self, frame: dict[str, Any]) -> None:
        ctx = self.ctx
        if ctx.refusing():
            ctx.metrics.logins.labels("drain").inc()
            self.kick(KickReason.DRAIN)
            return
        last_seq = _seq_field(frame, "last_seq")
        if last_seq is None and frame.get("last_seq") is not None:
            raise FrameError(ErrorCode.BAD_FRAME, "last_seq must be an integer >= 0")
        try:
            token = tokens.verify(ctx.settings.secret, frame.get("token"))
        except TokenError as exc:
            ctx.metrics.logins.labels("bad_token").inc()
            self.fail(ErrorCode.BAD_TOKEN, exc.detail)
            return
        self.phase = Phase.LOGGING_IN
        self._not_pending()
        self.user = token.username
        self.device = token.device
        assert self.transport is not None
        self.transport.pause_reading()
        self._task = ctx.spawn(self._login(token, last_seq))

    async def _login(self, token: tokens.Token, last_seq: int | None) -> None:
        ctx = self.ctx
        try:
            revoked, cursor = await ctx.store.login_state(self.user, self.device, token)
            if revoked:
                ctx.metrics.logins.labels("bad_token").inc()
                self.fail(ErrorCode.BAD_TOKEN, "token revoked")
                return
            if ctx.refusing():
                ctx.metrics.logins.labels("drain").inc()
                self.kick(KickReason.DRAIN)
                return
            start = last_seq if last_seq is not None else cursor
            self._order = SeqOrder(start, gap_wait_s=ctx.settings.gap_wait_ms / 1000, limit=MAX_HELD)
            self._syncing = True  # live messages are held until the replay is written
            older = ctx.hub.register(self)
            if older is not None:
                older.kick(KickReason.DUPLICATE_LOGIN)
            for ended in await ctx.store.claim(self.user, self.device, self.conn_id):
                await self._end(ended)
        except REDIS_FAILURES as exc:
            self._redis_failed("login", exc)
            return
        self._go_live()
        await self._sync(live=False)

    async def _end(self, ended: Ended) -> None:
        """Kick a session this login ended: here, or through its node."""
        ctx = self.ctx
        if ended.node != ctx.node_id:
            await ctx.kick_remote(self.user, ended)
        elif ended.reason == KickReason.DEVICE_LIMIT:
            ctx.hub.kick(self.user, ended.reason, ended.conn)
        # duplicate_login here: the hub's register replaced and kicked it already

    def _go_live(self) -> None:
        ctx = self.ctx
        self.phase = Phase.LIVE
        self._last_rx = ctx.loop.time()
        ctx.metrics.logins.labels("ok").inc()
        log.info(
            "login user=%s device=%s node=%s conn=%s last_seq=%d",
            self.user,
            self.device,
            ctx.node_id,
            self.conn_id,
            self.delivered,
        )
        self.send(
            {
                "t": FrameType.WELCOME.value,
                "user": self.user,
                "node": ctx.node_id,
                "heartbeat_s": ctx.settings.heartbeat_s,
                "last_seq": self.delivered,
            }
        )
        assert self.transport is not None
        self.transport.resume_reading()
        pending, self._inbuf = self._inbuf, b""
        self._process(pending)  # frames that came right behind the login

    # ----- delivery -----------------------------------------------------------------

    def deliver(self, item: Item) -> None:
        """A live ``msg`` frame for this user (from NATS): write, drop, or hold it by seq."""
        if not item.seq:  # broadcast, system, push to "*": not stored, written at once
            if self.phase is Phase.LIVE:
                self._write_msg(item, live=True)
            return
        order = self._order
        if order is None or self.phase is Phase.CLOSED:
            return
        try:
            ready = order.offer(item.seq, item, self.ctx.loop.time(), hold=self._syncing)
        except HeldFull:  # dropped here, read again from the inbox
            self.resync()
            return
        for out in ready:
            self._write_msg(out, live=True)
        if order.held and not self._syncing:
            self._await_gap(order)

    def resync(self) -> None:
        """Read the inbox after ``delivered`` again (gap, overflow, NATS reconnect)."""
        if self.phase is not Phase.LIVE:
            return
        if self._syncing:
            self._resync = True
            return
        self._syncing = True
        self._task = self.ctx.spawn(self._sync(live=True))

    def _await_gap(self, order: SeqOrder[Item]) -> None:
        deadline = order.gap_deadline
        if self._timer is None and deadline is not None and self.phase is Phase.LIVE:
            loop = self.ctx.loop
            self._timer = loop.call_at(deadline, self._on_gap)

    def _on_gap(self) -> None:
        self._timer = None
        order = self._order
        if order is None or not order.held:
            return
        if order.gap_due(self.ctx.loop.time()):
            log.debug("gap user=%s conn=%s after seq %d", self.user, self.conn_id, order.delivered)
            self.resync()
        else:
            self._await_gap(order)  # the gap moved on meanwhile: its wait restarted

    async def _sync(self, live: bool) -> None:
        ctx = self.ctx
        order = self._order
        assert order is not None
        try:
            while True:
                self._resync = False
                while True:
                    page = await ctx.store.read_after(self.user, order.delivered, REPLAY_PAGE)
                    for frame in page:
                        if order.accept(frame["seq"]):
                            self._write_msg(_stored(frame), live)
                        if self._out_size >= ctx.settings.write_buffer // 4:
                            await self._wait_writable()
                    if len(page) < REPLAY_PAGE:
                        break
                    await self._wait_writable()
                if not self._resync:
                    break
        except REDIS_FAILURES as exc:
            self._redis_failed("inbox read", exc)
            return
        self._syncing = False
        self._task = None
        for out in order.release(ctx.loop.time()):
            self._write_msg(out, live=True)
        if order.held:
            self._await_gap(order)

    def _write_msg(self, item: Item, live: bool) -> None:
        self._write(item.frame)
        metrics = self.ctx.metrics
        metrics.message_out(item.kind)
        if live:
            metrics.delivery_latency.observe(max(0.0, time.time() - item.ts / 1000))

    async def _wait_writable(self) -> None:
        """Flush, then wait while the peer has not read below the low-water mark (replay pacing)."""
        self.flush()
        writable = self._writable
        if writable is None or self.phase is Phase.CLOSED:
            return
        try:
            await asyncio.wait_for(writable.wait(), 3 * self.ctx.settings.heartbeat_s)
        except TimeoutError:
            self._slow_consumer()

    # ----- frames out ---------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Queue one frame; it goes out with the others of this loop turn in one write."""
        self._write(encode(frame))

    def _write(self, data: bytes) -> None:
        if self.phase is Phase.CLOSED:
            return
        self._out.append(data)
        self._out_size += len(data)
        if not self._queued:
            self._queued = True
            self.ctx.flushes.add(self)

    def flush(self) -> None:
        """Write what is queued, in one ``transport.write`` (``ctx.flushes`` calls it at the end
        of the loop turn; a close or the replay's pacing sooner)."""
        self._queued = False
        transport = self.transport
        if not self._out or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() + self._out_size > self.ctx.settings.write_buffer:
            self._slow_consumer()
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        transport.write(data)

    def _slow_consumer(self) -> None:
        self.ctx.metrics.slow_consumers.inc()
        log.warning(
            "slow consumer user=%s node=%s conn=%s delivered=%d: closed",
            self.user,
            self.ctx.node_id,
            self.conn_id,
            self.delivered,
        )
        self._out.clear()
        self._out_size = 0
        self._shutdown(release=True, how="abort")

    # ----- closing ------------------------------------------------------------------

    def kick(self, reason: KickReason) -> None:
        """Send ``kick{reason}`` and close."""
        if self.phase is Phase.CLOSED:
            return
        self.ctx.metrics.kicks.labels(reason.value).inc()
        log.info("kick user=%s node=%s conn=%s reason=%s", self.user, self.ctx.node_id, self.conn_id, reason)
        self.close(kick_frame(reason))

    def fail(self, code: ErrorCode | str, reason: str) -> None:
        """Send ``error{code, reason}`` and close."""
        if self.phase is Phase.CLOSED:
            return
        log.info(
            "error user=%s node=%s conn=%s code=%s: %s",
            self.user,
            self.ctx.node_id,
            self.conn_id,
            code,
            reason,
        )
        self.close(error_frame(code, reason))

    def close(self, frame: dict[str, Any] | None = None, *, release: bool = True) -> None:
        """Write ``frame`` (if any) and what is queued, then close; ``release`` drops the session."""
        if self.phase is Phase.CLOSED:
            return
        if frame is not None:
            self.send(frame)
        self.flush()
        self._shutdown(release=release, how="close")

    def _shutdown(self, *, release: bool, how: str) -> None:
        if self.phase is Phase.CLOSED:  # a flush found a slow consumer and aborted already
            return
        self.phase = Phase.CLOSED
        self._cancel_timer()
        if self._order is not None:
            self._order.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        transport = self.transport
        if transport is not None and how == "abort":
            transport.abort()
        elif transport is not None and how == "close":
            transport.close()
            self._timer = self.ctx.loop.call_later(CLOSE_GRACE_S, transport.abort)
        self._forget(release)

    def _not_pending(self) -> None:
        """It logged in or closed: its place among the pending logins is free."""
        if self._pending is not None:
            self.ctx.pending.leave(self._pending)
            self._pending = None

    def _forget(self, release: bool) -> None:
        """Once per connection, as it closes: leave the node, flush its ack, drop its session."""
        ctx = self.ctx
        self._not_pending()
        if self not in ctx.connections:
            return
        ctx.connections.discard(self)
        ctx.metrics.connections.dec()
        if self.user:
            ctx.hub.unregister(self)
            ctx.acks.wake(self.user, self.device)
            if release and not ctx.stopping():
                ctx.spawn(_release(ctx, self.user, self.device, self.conn_id))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _redis_failed(self, what: str, exc: BaseException) -> None:
        self.ctx.metrics.redis_errors.inc()
        log.warning(
            "%s failed user=%s node=%s conn=%s: %s", what, self.user, self.ctx.node_id, self.conn_id, exc
        )
        self.close()


async def _release(ctx: NodeContext, user: str, device: str, conn_id: str) -> None:
    """Drop the session of a closed connection, unless a newer one of its device took it."""
    try:
        removed = await ctx.store.release(user, device, conn_id)
        newer = ctx.hub.get(user, device)
        if removed and newer is not None:
            # Two logins of one device raced here and the older claimed last: restore the newer.
            await ctx.store.claim(user, device, newer.conn_id)
    except REDIS_FAILURES as exc:
        ctx.metrics.redis_errors.inc()
        log.warning("session release user=%s node=%s conn=%s failed: %s", user, ctx.node_id, conn_id, exc)


def _stored(frame: dict[str, Any]) -> Item:
    """A replayed frame (read from the inbox) as a delivery, encoded once."""
    return Item(owner(frame), frame["seq"], frame["ts"], frame.get("kind", ""), encode(frame))


def _seq_field(frame: dict[str, Any], name: str) -> int | None:
    """``frame[name]`` if it is an int >= 0 (not a bool), else None."""
    value = frame.get(name)
    if type(value) is int and value >= 0:
        return value
    return None
