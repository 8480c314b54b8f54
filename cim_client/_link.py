"""The self-healing session to a node: login frame, reader, heartbeat, acks, reconnect.

A ``NodeLink`` opens a connection (TCP, or a WebSocket: ``_socket.py``) to the node its
owner names, sends the
``login`` frame and waits for ``welcome``. From then on a supervisor task keeps
the session up:

- it reads frames and hands every ``msg`` to the application (the
  ``on_message`` callback, or else the bounded queue behind ``take``),
  dropping duplicates by seq: a stored message (``seq > 0``) whose seq is not
  above ``last_seq`` was already delivered and is counted in
  ``duplicates_dropped``;
- it acks (cumulatively, batched) only what the application has taken, so a
  crash between receipt and use means a replay, never a loss;
- it pings every ``heartbeat_s`` and treats a silent node as dead;
- on a dropped connection it reconnects with exponential backoff and full
  jitter, asking its owner for a node each time (the ``Client`` logs in through
  the route again, so a dead node is replaced by a live one) and sending
  ``last_seq`` so the node replays exactly what is missing; a ``drain`` kick
  reconnects at once; ``duplicate_login``, ``logout`` and ``revoked`` end the
  session (state ``closed``, ``on_kick``).

``on_state(state, delay)`` is told every change (``delay``: seconds until the
next attempt, when reconnecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from cim_client._exceptions import CimApiError, CimError, ConnectionClosed, retryable
from cim_client._models import ConnectionState, Message, NodeAddress
from cim_client._socket import NodeSocket, open_socket
from cim_client._tls import tls_context
from shared.protocol import ErrorCode, FrameType, KickReason
from shared.tasks import first_done

__all__ = ["NextNode", "NodeLink"]

log = logging.getLogger(__name__)

NextNode = Callable[[bool], Awaitable[tuple[NodeAddress, str]]]
"""``(first attempt?) -> (node, token)`` of the next connection attempt."""

_ACK_EVERY = 50
"""Ack at once after this many taken messages ..."""
_ACK_DELAY_S = 0.1
"""... or this long after the first un-acked one."""
_CONNECT_TIMEOUT_S = 10.0
_CLOSED_MARK = object()


class _Wire:
    """One connection to a node (TCP or WebSocket) after its ``welcome``."""

    def __init__(
        self, socket: NodeSocket, pending: list[dict[str, Any]], node: NodeAddress, heartbeat_s: float
    ) -> None:
        self.socket = socket
        self.pending = pending
        self.node = node
        self.heartbeat_s = heartbeat_s
        self.last_rx = time.monotonic()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(frame)

    async def close(self) -> None:
        await self.socket.close()


class _Ended(Exception):
    """Why a live wire ended; ``final`` = no reconnect, ``at_once`` = no backoff."""

    def __init__(
        self, reason: str, *, final: bool = False, at_once: bool = False, kick: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.at_once = at_once
        self.kick = kick


class NodeLink:
    """The live session of one user; its owner says where to connect through ``next_node``.

    ``can_refresh_token()`` tells whether a ``bad_token`` refusal is worth a retry
    (the owner can log in again for a fresh token).
    """

    def __init__(
        self,
        username: str,
        next_node: NextNode,
        can_refresh_token: Callable[[], bool],
        *,
        on_message: Callable[[Message], Awaitable[None] | None] | None = None,
        on_state: Callable[[ConnectionState, float | None], None] | None = None,
        on_kick: Callable[[str], None] | None = None,
        last_seq: int | None = None,
        queue_size: int = 1000,
        backoff_min: float = 0.2,
        backoff_max: float = 10.0,
        node: NodeAddress | None = None,
        transport: str = "tcp",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.username = username
        self._transport = transport
        self._tls = tls
        self.node = node
        self.state = ConnectionState.CLOSED
        self.last_seq = last_seq or 0
        self.duplicates_dropped = 0
        self.close_reason: str | None = None
        self._next_node = next_node
        self._can_refresh_token = can_refresh_token
        self._send_last_seq = last_seq is not None
        self._on_message = on_message
        self._on_state = on_state
        self._on_kick = on_kick
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._wire: _Wire | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        # Acks: the app has taken everything up to _taken_seq; the node knows _acked_seq.
        self._taken_seq = 0
        self._acked_seq = 0
        self._unacked = 0
        self._ack_wanted = asyncio.Event()
        self._ack_now = asyncio.Event()
        self._state_changed = asyncio.Event()

    # ----- lifecycle ----------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session; return once ``welcome`` arrived, raising the first attempt's errors."""
        if self._supervisor is not None and not self._supervisor.done():
            raise CimError("already_connected", "connect() was already called")
        self._supervisor = None
        self._closing = False
        self.close_reason = None
        self._set_state(ConnectionState.CONNECTING)
        try:
            wire = await self._open(first=True)
        except BaseException:
            self._set_state(ConnectionState.CLOSED)
            raise
        self._wire = wire
        self._set_state(ConnectionState.READY)
        self._supervisor = asyncio.create_task(self._supervise(wire), name=f"cim-client-{self.username}")

    async def close(self) -> None:
        """Say ``bye``, stop every task and close the connection. Idempotent."""
        self._closing = True
        wire = self._wire
        if wire is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await wire.send({"t": FrameType.BYE.value})
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if wire is not None:  # the supervisor closes its wires, unless cancelled before it ran
            await wire.close()
        self._wire = None
        self._end()

    # ----- what the application takes ---------------------------------------------------

    async def messages(self) -> AsyncIterator[Message]:
        """Every message in order; ends once the session is closed and the queue is empty."""
        while True:
            try:
                yield await self.take(None)
            except ConnectionClosed:
                return

    async def take(self, timeout: float | None) -> Message:
        """The next message; ``TimeoutError`` after ``timeout`` s, ``ConnectionClosed`` at the end."""
        async with asyncio.timeout(timeout):
            while True:
                if self._queue.empty() and self.state is ConnectionState.CLOSED:
                    raise ConnectionClosed(detail=self.close_reason or "closed")
                item = await self._queue.get()
                if item is not _CLOSED_MARK:
                    break
                if self.state is ConnectionState.CLOSED:
                    self._queue.put_nowait(item)  # wake any other reader too
                    raise ConnectionClosed(detail=self.close_reason or "closed")
                # else: the end of an earlier session, connect() was called again since
        self._taken(item)
        return item

    def _taken(self, msg: Message) -> None:
        """The application has ``msg``: schedule its ack."""
        if msg.seq <= self._taken_seq:
            return
        self._taken_seq = msg.seq
        self._unacked += 1
        self._ack_wanted.set()
        if self._unacked >= _ACK_EVERY:
            self._ack_now.set()

    # ----- state --------------------------------------------------------------------

    async def wait_for_state(self, state: ConnectionState, timeout: float) -> None:
        """Return once ``state`` is the current state; ``TimeoutError`` after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while self.state is not state:
                await self._state_changed.wait()

    def _set_state(self, state: ConnectionState, delay: float | None = None) -> None:
        if state is self.state and delay is None:
            return
        self.state = state
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        log.debug("%s: %s", self.username, state)
        if self._on_state is not None:
            try:
                self._on_state(state, delay)
            except Exception:
                log.exception("on_state callback failed")

    def _end(self) -> None:
        """Enter ``closed`` and wake whoever waits for messages."""
        if self.state is ConnectionState.CLOSED:
            return
        self._set_state(ConnectionState.CLOSED)
        if not self._queue.full():
            self._queue.put_nowait(_CLOSED_MARK)

    # ----- one connection -----------------------------------------------------------

    async def _open(self, first: bool = False) -> _Wire:
        """Ask for a node, connect, send ``login``, wait for ``welcome``."""
        node, token = await self._next_node(first)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel from close().
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            socket = await open_socket(node, self._transport, self._tls or tls_context())
        try:
            login: dict[str, Any] = {"t": FrameType.LOGIN.value, "token": token}
            if self._send_last_seq:
                login["last_seq"] = self.last_seq
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await socket.send(login)
                welcome, pending = await _await_welcome(socket)
        except BaseException:
            await socket.close()
            raise
        # From now on we hold everything up to last_seq: say so on every later login.
        self.last_seq = max(self.last_seq, int(welcome.get("last_seq") or 0))
        self._send_last_seq = True
        node = dataclasses.replace(node, id=str(welcome.get("node") or node.id))
        self.node = node
        return _Wire(socket, pending, node, float(welcome.get("heartbeat_s") or 30))

    # ----- the supervisor -----------------------------------------------------------

    async def _supervise(self, wire: _Wire) -> None:
        """Keep the session up until ``close()`` or a final end."""
        current: _Wire | None = wire
        try:
            while current is not None and not self._closing:
                self._wire = current
                self._set_state(ConnectionState.READY)
                ended = await self._serve(current)
                self._wire = None
                await current.close()
                if ended.final or self._closing:
                    self.close_reason = ended.reason
                    if ended.kick and self._on_kick is not None:
                        self._notify_kick(ended.reason)
                    break
                log.info("%s: connection to %s ended (%s)", self.username, current.node.id, ended.reason)
                current = await self._reconnect(0 if ended.at_once else 1)
        finally:
            if self._wire is not None:
                await self._wire.close()
                self._wire = None
            self._end()

    def _notify_kick(self, reason: str) -> None:
        assert self._on_kick is not None
        try:
            self._on_kick(reason)
        except Exception:
            log.exception("on_kick callback failed")

    async def _reconnect(self, attempt: int) -> _Wire | None:
        """Try until a wire is up (None: a final refusal; close_reason says why)."""
        while True:
            delay = self._backoff(attempt) if attempt else 0.0
            self._set_state(ConnectionState.RECONNECTING, delay)
            if delay:
                await asyncio.sleep(delay)
            try:
                return await self._open()
            except Exception as exc:
                if not self._should_retry(exc):
                    log.warning("%s: giving up reconnecting: %s", self.username, exc)
                    self.close_reason = getattr(exc, "code", None) or type(exc).__name__
                    return None
                log.info("%s: reconnect attempt %d failed: %s", self.username, attempt + 1, exc)
            attempt += 1

    def _should_retry(self, exc: Exception) -> bool:
        if isinstance(exc, CimError) and not isinstance(exc, CimApiError):
            code = exc.code
            if code == ErrorCode.BAD_TOKEN:
                return self._can_refresh_token()  # the next login brings a fresh token
            if code in set(KickReason):
                return KickReason(code).reconnect
            if code in set(ErrorCode):
                return ErrorCode(code).reconnect
            return False
        return retryable(exc)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(max, min * 2^(attempt-1))]."""
        return random.uniform(0.0, min(self._backoff_max, self._backoff_min * 2 ** (attempt - 1)))

    async def _serve(self, wire: _Wire) -> _Ended:
        """Run the reader, heartbeat and acker of one wire until one of them ends it."""
        first = await first_done(self._read(wire), self._heartbeat(wire), self._acks(wire))
        assert first is not None  # no timeout: one of them ended
        exc = first.exception()
        if isinstance(exc, _Ended):
            return exc
        return _Ended(repr(exc) if exc else "connection closed")

    # ----- the three loops of a live wire ---------------------------------------------

    async def _read(self, wire: _Wire) -> None:
        """Handle frames until the wire ends (always by raising ``_Ended``)."""
        try:
            pending, wire.pending = wire.pending, []
            for frame in pending:  # those that came in with welcome
                await self._handle(frame)
            while True:
                frames = await wire.socket.receive()
                wire.last_rx = time.monotonic()
                for frame in frames:
                    await self._handle(frame)
        except EOFError as exc:
            raise _Ended("eof") from exc
        except (OSError, CimError) as exc:
            raise _Ended(repr(exc)) from exc

    async def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("t")
        if kind == FrameType.MSG:
            await self._deliver(Message.from_wire(frame))
        elif kind == FrameType.KICK:
            reason = str(frame.get("reason"))
            again = reason in set(KickReason) and KickReason(reason).reconnect
            raise _Ended(reason, final=not again, at_once=again, kick=True)
        elif kind == FrameType.ERROR:
            code = str(frame.get("code"))
            log.warning("%s: error frame %s: %s", self.username, code, frame.get("reason"))
            raise _Ended(code, final=not self._should_retry(CimError(code)))

    async def _deliver(self, msg: Message) -> None:
        """Hand one message to the app, unless its seq says we have it already."""
        if msg.seq > 0 and msg.seq <= self.last_seq:
            self.duplicates_dropped += 1
            return
        if self._on_message is not None:
            try:
                result = self._on_message(msg)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_message callback failed for %s", msg.id)
            self._taken(msg)
        else:
            await self._queue.put(msg)
        # Only now: if the connection dies while the queue is full, the node replays it.
        if msg.seq > self.last_seq:
            self.last_seq = msg.seq

    async def _heartbeat(self, wire: _Wire) -> None:
        """Ping every ``heartbeat_s``; a node silent for 2.5 periods is taken for dead."""
        period = max(0.05, wire.heartbeat_s)
        while True:
            await asyncio.sleep(period)
            if time.monotonic() - wire.last_rx > 2.5 * period:
                raise _Ended("heartbeat timeout")
            async with asyncio.timeout(period):
                await wire.send({"t": FrameType.PING.value})

    async def _acks(self, wire: _Wire) -> None:
        """Send a cumulative ack for what the app took: every 50 messages or after 100 ms."""
        while True:
            if self._taken_seq <= self._acked_seq:
                await self._ack_wanted.wait()
                self._ack_wanted.clear()
                if self._taken_seq <= self._acked_seq:
                    continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ACK_DELAY_S):
                    await self._ack_now.wait()
            self._ack_now.clear()
            seq = self._taken_seq
            self._unacked = 0
            await wire.send({"t": FrameType.ACK.value, "seq": seq})
            self._acked_seq = seq


async def _await_welcome(socket: NodeSocket) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read until ``welcome``; the frames that came with it are returned to be handled next."""
    while True:
        try:
            frames = await socket.receive()
        except EOFError as exc:
            raise EOFError("the node closed the connection before welcome") from exc
        for i, frame in enumerate(frames):
            kind = frame.get("t")
            if kind == FrameType.WELCOME:
                return frame, frames[i + 1 :]
            if kind == FrameType.ERROR:
                raise CimError(str(frame.get("code")), str(frame.get("reason", "")))
            if kind == FrameType.KICK:
                raise CimError(str(frame.get("reason")), "kicked during login")
