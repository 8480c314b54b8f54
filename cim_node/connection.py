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
from typing import TYPE_CHECKING, Any, cast

from redis.exceptions import RedisError

from shared import inbox, sessions, tokens
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

if TYPE_CHECKING:
    from cim_node.server import NodeServer

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
        "node",
        "conn_id",
        "user",
        "phase",
        "delivered",
        "acked",
        "transport",
        "_decoder",
        "_inbuf",
        "_out",
        "_out_size",
        "_flush_handle",
        "_timer",
        "_gap_handle",
        "_last_rx",
        "_task",
        "_held",
        "_syncing",
        "_resync",
        "_writable",
    )

    def __init__(self, node: NodeServer) -> None:
        self.node = node
        self.conn_id = node.next_conn_id()
        self.user = ""
        self.phase = Phase.NEW
        self.delivered = 0
        self.acked = 0
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(node.settings.max_frame)
        self._inbuf = b""
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._gap_handle: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self._task: asyncio.Task | None = None
        self._held: dict[int, dict[str, Any]] | None = None
        self._syncing = False
        self._resync = False
        self._writable: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.conn_id} user={self.user or '-'} {self.phase.name}>"

    # ----- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport; it has the same methods.
        self.transport = cast(asyncio.Transport, transport)
        # Above half the hard limit the replay waits for the peer to read (pause_writing).
        self.transport.set_write_buffer_limits(high=self.node.settings.write_buffer // 2)
        # The kernel's send buffer is bounded too: autotuned (up to 4 MB on Linux), it would
        # hide a reader that takes nothing and hold that much per connection.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.node.settings.write_buffer)
        self._last_rx = self.node.loop.time()
        self._timer = self.node.loop.call_later(self.node.settings.login_timeout_s, self._login_timeout)
        self.node.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self._last_rx = self.node.loop.time()
        if self.phase is Phase.LOGGING_IN:
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
        self.node.metrics.frame_in(kind.value)
        if self.phase is Phase.NEW:
            if kind is not FrameType.LOGIN:
                raise FrameError(ErrorCode.NOT_LOGGED_IN, "the first frame must be login")
            self._start_login(frame)
        elif kind is FrameType.PING:
            self._write(_PONG)
        elif kind is FrameType.ACK:
            self._on_ack(frame)
        elif kind is FrameType.BYE:
            log.info("bye user=%s node=%s conn=%s", self.user, self.node.id, self.conn_id)
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
            self.node.acks.mark(self.user, seq)

    # ----- login ------------------------------------------------------------------

    def _start_login(self, frame: dict[str, Any]) -> None:
        node = self.node
        if node.draining:
            node.metrics.logins.labels("drain").inc()
            self.kick(KickReason.DRAIN)
            return
        last_seq = _seq_field(frame, "last_seq")
        if last_seq is None and frame.get("last_seq") is not None:
            raise FrameError(ErrorCode.BAD_FRAME, "last_seq must be an integer >= 0")
        try:
            token = tokens.verify(node.settings.secret, frame.get("token"))
        except TokenError as exc:
            node.metrics.logins.labels("bad_token").inc()
            self.fail(ErrorCode.BAD_TOKEN, exc.detail)
            return
        self.phase = Phase.LOGGING_IN
        self.user = token.username
        assert self.transport is not None
        self.transport.pause_reading()
        self._task = node.spawn(self._login(token, last_seq))

    async def _login(self, token: tokens.Token, last_seq: int | None) -> None:
        node = self.node
        try:
            async with node.redis.pipeline(transaction=False) as pipe:
                pipe.exists(node.keys.revoked(token.jti))
                pipe.get(node.keys.ack(self.user))
                revoked, cursor = await pipe.execute()
            if revoked:
                node.metrics.logins.labels("bad_token").inc()
                self.fail(ErrorCode.BAD_TOKEN, "token revoked")
                return
            if node.draining:
                node.metrics.logins.labels("drain").inc()
                self.kick(KickReason.DRAIN)
                return
            self.delivered = last_seq if last_seq is not None else int(cursor or 0)
            self._syncing = True  # live messages are held until the replay is written
            older = node.hub.register(self)
            if older is not None:
                older.kick(KickReason.DUPLICATE_LOGIN)
            replaced = await sessions.claim(
                node.redis, node.scripts, node.keys, self.user, node.id, self.conn_id
            )
            if replaced is not None and replaced.node != node.id:
                await node.kick_remote(self.user, replaced)
        except (RedisError, OSError) as exc:
            self._redis_failed("login", exc)
            return
        self._go_live()
        await self._sync(live=False)

    def _go_live(self) -> None:
        node = self.node
        self._cancel_timer()
        self.phase = Phase.LIVE
        node.metrics.logins.labels("ok").inc()
        log.info(
            "login user=%s node=%s conn=%s last_seq=%d", self.user, node.id, self.conn_id, self.delivered
        )
        self.send(
            {
                "t": FrameType.WELCOME.value,
                "user": self.user,
                "node": node.id,
                "heartbeat_s": node.settings.heartbeat_s,
                "last_seq": self.delivered,
            }
        )
        self._arm_idle(3 * node.settings.heartbeat_s)
        assert self.transport is not None
        self.transport.resume_reading()
        pending, self._inbuf = self._inbuf, b""
        self._process(pending)  # frames that came right behind the login

    def _login_timeout(self) -> None:
        self._timer = None
        self.node.metrics.logins.labels("timeout").inc()
        self.fail(ErrorCode.LOGIN_TIMEOUT, f"no login within {self.node.settings.login_timeout_s:g}s")

    # ----- delivery -----------------------------------------------------------------

    def deliver(self, frame: dict[str, Any]) -> None:
        """A live ``msg`` frame for this user (from NATS): write, drop, or hold it by seq."""
        seq = frame.get("seq", 0)
        if not seq:  # broadcast, system, push to "*": not stored, written at once
            if self.phase is Phase.LIVE:
                self._write_msg(frame, live=True)
            return
        if seq <= self.delivered:
            return
        if not self._syncing and seq == self.delivered + 1:
            self._write_msg(frame, live=True)
            if self._held:
                self._release_held()
            return
        held = self._held
        if held is None:
            held = self._held = {}
        if len(held) >= MAX_HELD:  # dropped here, read again from the inbox
            self.resync()
            return
        held[seq] = frame
        if not self._syncing and self._gap_handle is None:
            self._gap_handle = self.node.loop.call_later(self.node.settings.gap_wait_ms / 1000, self._on_gap)

    def resync(self) -> None:
        """Read the inbox after ``delivered`` again (gap, overflow, NATS reconnect)."""
        if self.phase is not Phase.LIVE:
            return
        if self._syncing:
            self._resync = True
            return
        self._syncing = True
        self._task = self.node.spawn(self._sync(live=True))

    def _on_gap(self) -> None:
        self._gap_handle = None
        if self._held:
            log.debug("gap user=%s conn=%s after seq %d", self.user, self.conn_id, self.delivered)
            self.resync()

    async def _sync(self, live: bool) -> None:
        node = self.node
        try:
            while True:
                self._resync = False
                while True:
                    async with node.inbox_slots:
                        page = await inbox.read_after(
                            node.redis, node.keys, self.user, self.delivered, REPLAY_PAGE
                        )
                    for frame in page:
                        self._write_msg(frame, live)
                        if self._out_size >= node.settings.write_buffer // 4:
                            await self._wait_writable()
                    if len(page) < REPLAY_PAGE:
                        break
                    await self._wait_writable()
                if not self._resync:
                    break
        except (RedisError, OSError) as exc:
            self._redis_failed("inbox read", exc)
            return
        self._syncing = False
        self._release_held()

    def _release_held(self) -> None:
        """Write the held messages that follow ``delivered``; wait for a gap fill if one is missing."""
        held = self._held
        if not held:
            return
        while (nxt := self.delivered + 1) in held:
            self._write_msg(held.pop(nxt), live=True)
        for seq in [s for s in held if s <= self.delivered]:
            del held[seq]
        if not held:
            self._held = None
            if self._gap_handle is not None:
                self._gap_handle.cancel()
                self._gap_handle = None
        elif self._gap_handle is None and self.phase is Phase.LIVE:
            self._gap_handle = self.node.loop.call_later(self.node.settings.gap_wait_ms / 1000, self._on_gap)

    def _write_msg(self, frame: dict[str, Any], live: bool) -> None:
        seq = frame.get("seq", 0)
        if seq:
            if seq <= self.delivered:
                return
            self.delivered = seq
        self._write(encode(frame))
        metrics = self.node.metrics
        metrics.message_out(frame.get("kind", ""))
        if live:
            metrics.delivery_latency.observe(max(0.0, time.time() - frame.get("ts", 0) / 1000))

    async def _wait_writable(self) -> None:
        """Flush, then wait while the peer has not read below the low-water mark (replay pacing)."""
        self._flush()
        writable = self._writable
        if writable is None or self.phase is Phase.CLOSED:
            return
        try:
            await asyncio.wait_for(writable.wait(), 3 * self.node.settings.heartbeat_s)
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
        if self._flush_handle is None:
            self._flush_handle = self.node.loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        transport = self.transport
        if not self._out or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() + self._out_size > self.node.settings.write_buffer:
            self._slow_consumer()
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        transport.write(data)

    def _slow_consumer(self) -> None:
        self.node.metrics.slow_consumers.inc()
        log.warning(
            "slow consumer user=%s node=%s conn=%s delivered=%d: closed",
            self.user,
            self.node.id,
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
        self.node.metrics.kicks.labels(reason.value).inc()
        log.info("kick user=%s node=%s conn=%s reason=%s", self.user, self.node.id, self.conn_id, reason)
        self.close(kick_frame(reason))

    def fail(self, code: ErrorCode | str, reason: str) -> None:
        """Send ``error{code, reason}`` and close."""
        if self.phase is Phase.CLOSED:
            return
        log.info(
            "error user=%s node=%s conn=%s code=%s: %s", self.user, self.node.id, self.conn_id, code, reason
        )
        self.close(error_frame(code, reason))

    def close(self, frame: dict[str, Any] | None = None, *, release: bool = True) -> None:
        """Write ``frame`` (if any) and what is queued, then close; ``release`` drops the session."""
        if self.phase is Phase.CLOSED:
            return
        if frame is not None:
            self.send(frame)
        self._flush()
        self._shutdown(release=release, how="close")

    def _shutdown(self, *, release: bool, how: str) -> None:
        if self.phase is Phase.CLOSED:  # a flush found a slow consumer and aborted already
            return
        self.phase = Phase.CLOSED
        self._cancel_timer()
        for handle in (self._flush_handle, self._gap_handle):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._gap_handle = None
        self._held = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        transport = self.transport
        if transport is not None and how == "abort":
            transport.abort()
        elif transport is not None and how == "close":
            transport.close()
            self._timer = self.node.loop.call_later(CLOSE_GRACE_S, transport.abort)
        self.node.connection_closed(self, release)

    # ----- timers -------------------------------------------------------------------

    def _arm_idle(self, delay: float) -> None:
        self._timer = self.node.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        """Close a connection silent for 3 x heartbeat; one timer, re-armed lazily."""
        limit = 3 * self.node.settings.heartbeat_s
        idle = self.node.loop.time() - self._last_rx
        if idle >= limit:
            self._timer = None
            log.info(
                "idle user=%s node=%s conn=%s for %.1fs: closed", self.user, self.node.id, self.conn_id, idle
            )
            self.close()
        else:
            self._arm_idle(limit - idle)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _redis_failed(self, what: str, exc: BaseException) -> None:
        self.node.metrics.redis_errors.inc()
        log.warning("%s failed user=%s node=%s conn=%s: %s", what, self.user, self.node.id, self.conn_id, exc)
        self.close()


def _seq_field(frame: dict[str, Any], name: str) -> int | None:
    """``frame[name]`` if it is an int >= 0 (not a bool), else None."""
    value = frame.get(name)
    if type(value) is int and value >= 0:
        return value
    return None
