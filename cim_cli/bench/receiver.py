"""Receivers on raw TCP frames: log in with a token, record each ``msg``, ack cumulatively.

Not the SDK: one ``asyncio.Protocol`` per connection, the ``shared.protocol``
codec, no per-message task or queue. A pool owns the connections and one
housekeeping task that writes, every ``ACK_EVERY_S``, one cumulative ``ack``
per connection that got something new, and a ``ping`` every ``PING_EVERY_S``
(long setups must not look silent to the node).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from cim_cli.bench.receipts import Receipts
from cim_cli.bench.target import User
from shared.links import client_tls
from shared.protocol import FrameDecoder, FrameType, encode

__all__ = ["LOGIN_PARALLEL", "FrameReceiver", "ReceiverPool", "connect_all", "open_receiver"]

ACK_EVERY_S = 0.2
PING_EVERY_S = 10.0
LOGIN_TIMEOUT_S = 30.0
LOGIN_PARALLEL = 64
"""Logins in flight while connecting receivers: a node's Redis pool (redis-py's default of 100
connections, which raises rather than waits) refuses logins past about 100 at once."""
_MAX_FRAME = 1 << 20
_PING = encode({"t": FrameType.PING.value})


class FrameReceiver(asyncio.Protocol):
    """One logged-in connection. ``welcome`` resolves with the welcome frame (or the error/kick)."""

    def __init__(self, token: str, receipts: Receipts) -> None:
        self.token = token
        self.receipts = receipts
        self.seq = 0
        """Highest seq received (cumulative ack and the next login's ``last_seq``)."""
        self.acked = 0
        self.node = ""
        self.closed_by: str = ""
        """Why the node closed us: a kick reason or an error code ('' = plain close)."""
        self.transport: asyncio.Transport | None = None
        self.welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._decoder = FrameDecoder(_MAX_FRAME)
        self.on_lost: Callable[[FrameReceiver], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        login: dict[str, Any] = {"t": FrameType.LOGIN.value, "token": self.token}
        if self.seq:
            login["last_seq"] = self.seq
        transport.write(encode(login))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            kind = frame["t"]
            if kind == "msg":
                self.seq = max(self.seq, frame.get("seq", 0))
                if not frame.get("carbon"):  # the sender's own copy (v0.2) is not a delivery
                    self.receipts.add(frame.get("body", ""))
            elif kind == "welcome":
                self.node = frame.get("node", "")
                if not self.welcome.done():
                    self.welcome.set_result(frame)
            elif kind in ("kick", "error"):
                self.closed_by = frame.get("reason") if kind == "kick" else frame.get("code", "error")
                if not self.welcome.done():
                    self.welcome.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.welcome.done():
            self.welcome.set_exception(ConnectionError(f"closed before welcome: {exc or self.closed_by}"))
        if self.on_lost is not None:
            self.on_lost(self)

    def flush_ack(self) -> None:
        if self.transport is not None and self.seq > self.acked:
            self.transport.write(encode({"t": FrameType.ACK.value, "seq": self.seq}))
            self.acked = self.seq

    def rearm(self) -> None:
        """Ready for another login on a new connection (keeps ``seq``)."""
        self.welcome = asyncio.get_running_loop().create_future()
        self._decoder = FrameDecoder(_MAX_FRAME)
        self.closed_by = ""

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_receiver(receiver: FrameReceiver, host: str, port: int, tls: str | None = None) -> None:
    """Connect ``receiver`` (over TLS checked against ``tls``, a CA file, when not None) and wait
    for its welcome; raise ``ConnectionError`` if refused."""
    loop = asyncio.get_running_loop()
    ssl = None if tls is None else client_tls(tls)
    await loop.create_connection(lambda: receiver, host, port, ssl=ssl)
    async with asyncio.timeout(LOGIN_TIMEOUT_S):
        frame = await receiver.welcome
    if frame["t"] != "welcome":
        receiver.close()
        raise ConnectionError(f"login refused: {frame}")


class ReceiverPool:
    """The receivers of one run and their housekeeping task (``async with``)."""

    def __init__(self, receipts: Receipts) -> None:
        self.receipts = receipts
        self.receivers: list[FrameReceiver] = []
        self._task: asyncio.Task[None] | None = None

    def new(self, token: str) -> FrameReceiver:
        receiver = FrameReceiver(token, self.receipts)
        self.receivers.append(receiver)
        return receiver

    async def __aenter__(self) -> ReceiverPool:
        self._task = asyncio.create_task(self._housekeeping())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for receiver in self.receivers:
            receiver.close()

    async def _housekeeping(self) -> None:
        next_ping = time.monotonic() + PING_EVERY_S
        while True:
            await asyncio.sleep(ACK_EVERY_S)
            for receiver in self.receivers:
                receiver.flush_ack()
            if time.monotonic() >= next_ping:
                next_ping += PING_EVERY_S
                for receiver in self.receivers:
                    if receiver.transport is not None:
                        receiver.transport.write(_PING)


async def connect_all(
    pool: ReceiverPool,
    users: list[User],
    at: tuple[str, int] | None = None,
    on_lost: Callable[[FrameReceiver], None] | None = None,
) -> list[FrameReceiver]:
    """A receiver per user, logged in on the user's node (or all ``at`` one host and port),
    ``LOGIN_PARALLEL`` logins in flight; every one must be welcomed. ``on_lost`` is called when
    one of them loses its connection afterwards."""
    gate = asyncio.Semaphore(LOGIN_PARALLEL)

    async def one(user: User) -> FrameReceiver:
        async with gate:
            receiver = pool.new(user.token)
            await open_receiver(receiver, *(at or (user.host, user.port)), user.tls)
            receiver.on_lost = on_lost
            return receiver

    return await asyncio.gather(*(one(user) for user in users))
