"""The async cim client: HTTP calls through the route plus one live TCP session to a node.

A ``Client`` logs in through the route (``POST /login`` names a node), opens a
TCP connection to that node, sends the ``login`` frame and waits for
``welcome``. From then on a supervisor task keeps the session up:

- it reads frames and hands every ``msg`` to the application (the
  ``on_message`` callback, or else the bounded queue behind ``messages()``),
  dropping duplicates by seq: a stored message (``seq > 0``) whose seq is not
  above ``last_seq`` was already delivered and is counted in
  ``duplicates_dropped``;
- it acks (cumulatively, batched) only what the application has taken, so a
  crash between receipt and use means a replay, never a loss;
- it pings every ``heartbeat_s`` and treats a silent node as dead;
- on a dropped connection it reconnects with exponential backoff and full
  jitter, logging in through the route again each time (so a dead node is
  replaced by a live one) and sending ``last_seq`` so the node replays exactly
  what is missing; a ``drain`` kick reconnects at once; ``duplicate_login``,
  ``logout`` and ``revoked`` end the session (state ``closed``, ``on_kick``).

States: ``closed`` (before ``connect`` and after the end) -> ``connecting`` ->
``ready`` <-> ``reconnecting`` -> ``closed``; ``on_state(state, delay)`` is told
every change (``delay``: seconds until the next attempt, when reconnecting).

HTTP errors raise ``CimApiError`` (``status``, ``code``, ``detail`` from the
route's error envelope). Server-side calls with an API key live in
``cim_client.AdminClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

import httpx

from shared.errors import ApiError, CimError
from shared.protocol import ErrorCode, FrameDecoder, FrameType, KickReason, encode

__all__ = [
    "CimApiError",
    "Client",
    "ConnectionClosed",
    "ConnectionState",
    "Message",
    "NodeAddress",
    "SendResult",
    "api_url",
    "raise_for_error",
    "retryable",
]

log = logging.getLogger(__name__)

CimApiError = ApiError
"""An HTTP error answer of the route: ``status``, ``code`` and ``detail``."""

_MAX_INCOMING_FRAME = 1 << 20
"""Largest frame accepted from a node (a node's own limit is usually far lower)."""
_ACK_EVERY = 50
"""Ack at once after this many taken messages ..."""
_ACK_DELAY_S = 0.1
"""... or this long after the first un-acked one."""
_CONNECT_TIMEOUT_S = 10.0
_SEND_ATTEMPTS = 5
_SEND_RETRY_BASE_S = 0.1


class ConnectionState(enum.StrEnum):
    """Where the TCP session is; see the module docstring for the transitions."""

    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ConnectionClosed(CimError):
    """The session ended (``close()``, a final kick or a refused login)."""

    code = "closed"


@dataclass(frozen=True, slots=True)
class Message:
    """One message, from a ``msg`` frame or a history answer."""

    id: str
    seq: int
    kind: str
    sender: str
    to: str
    body: str
    ts: int
    group: str | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Message:
        """Build from a ``msg`` frame or a history item (``from`` is the sender)."""
        return cls(
            id=str(data.get("id", "")),
            seq=int(data.get("seq") or 0),
            kind=str(data.get("kind", "")),
            sender=str(data.get("from", "")),
            to=str(data.get("to", "")),
            body=str(data.get("body", "")),
            ts=int(data.get("ts") or 0),
            group=data.get("group"),
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """The route's answer to ``POST /messages``; ``seq`` is None for a delayed send."""

    id: str
    seq: int | None
    ts: int
    status: str
    due: int | None = None


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where a node listens for clients."""

    id: str
    host: str
    port: int

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> NodeAddress:
        return cls(id=str(data["id"]), host=str(data["host"]), port=int(data["port"]))


def api_url(route_url: str) -> str:
    """The ``/api/v1`` base of a route given as ``http://host:port`` (with or without the suffix)."""
    base = route_url.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


def raise_for_error(resp: httpx.Response) -> None:
    """Raise ``CimApiError`` for a 4xx/5xx answer, with the envelope's code and detail."""
    if resp.status_code < 400:
        return
    code, detail = f"http_{resp.status_code}", resp.text[:200]
    with contextlib.suppress(ValueError):
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            code, detail = body["error"], str(body.get("detail") or "")
    raise CimApiError(resp.status_code, code, detail)


def retryable(exc: BaseException) -> bool:
    """Whether a failed HTTP call or TCP connect is worth another try later."""
    if isinstance(exc, CimApiError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, OSError | EOFError | TimeoutError | httpx.TransportError)


class _Link:
    """One TCP connection to a node after its ``welcome``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: FrameDecoder,
        pending: list[dict[str, Any]],
        node: NodeAddress,
        heartbeat_s: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = decoder
        self.pending = pending
        self.node = node
        self.heartbeat_s = heartbeat_s
        self.last_rx = time.monotonic()

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(encode(frame))
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.writer.wait_closed()


class _Ended(Exception):
    """Internal: why a live link ended; ``final`` = no reconnect, ``at_once`` = no backoff."""

    def __init__(
        self, reason: str, *, final: bool = False, at_once: bool = False, kick: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.at_once = at_once
        self.kick = kick


_CLOSED_MARK = object()


class Client:
    """A cim user: HTTP calls through the route and a self-healing TCP session.

    ``password`` lets the client log in (again) through the route whenever it
    needs a node or a fresh token; with only ``token`` it can make HTTP calls
    and connect to ``node`` (keyword), but cannot move to another node.
    ``last_seq`` is the highest seq the application already holds (from a
    previous run); without it the node replays after the server-side ack cursor.
    ``on_message`` replaces the queue behind ``messages()``: it is awaited for
    each message in order, and the message counts as taken when it returns.
    """

    def __init__(
        self,
        route_url: str,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        on_message: Callable[[Message], Awaitable[None] | None] | None = None,
        on_state: Callable[[ConnectionState, float | None], None] | None = None,
        on_kick: Callable[[str], None] | None = None,
        last_seq: int | None = None,
        queue_size: int = 1000,
        backoff_min: float = 0.2,
        backoff_max: float = 10.0,
        http: httpx.AsyncClient | None = None,
        node: NodeAddress | None = None,
    ) -> None:
        self.route_url = route_url.rstrip("/")
        self.username = username
        self.password = password
        self.token = token
        self.node = node
        self.state = ConnectionState.CLOSED
        self.last_seq = last_seq or 0
        self.duplicates_dropped = 0
        self.close_reason: str | None = None
        """Why the session ended (a kick reason or an error code), when it did."""
        self._send_last_seq = last_seq is not None
        self._on_message = on_message
        self._on_state = on_state
        self._on_kick = on_kick
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._api = api_url(route_url)
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._own_http = http is None
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._link: _Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._http_closed = False
        # Acks: the app has taken everything up to _taken_seq; the node knows _acked_seq.
        self._taken_seq = 0
        self._acked_seq = 0
        self._unacked = 0
        self._ack_wanted = asyncio.Event()
        self._ack_now = asyncio.Event()
        self._state_changed = asyncio.Event()

    # ----- HTTP -------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        """One HTTP call; a 401 with a password on hand logs in again and retries once."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else None
            resp = await self._http.request(
                method, self._api + path, json=json, params=params, headers=headers
            )
            if resp.status_code == 401 and auth and self.password and attempt == 1:
                await self.login()
                continue
            raise_for_error(resp)
            return resp.json() if resp.content else None
        raise AssertionError("unreachable")

    async def register(self) -> None:
        """``POST /users``; ``CimApiError(409, "username_taken")`` when taken."""
        await self._call(
            "POST", "/users", json={"username": self.username, "password": self._need_password()}
        )

    async def login(self) -> dict[str, Any]:
        """``POST /login``: keeps the token and the node; returns the answer."""
        answer = await self._call(
            "POST", "/login", json={"username": self.username, "password": self._need_password()}, auth=False
        )
        self.token = answer["token"]
        self.node = NodeAddress.from_wire(answer["node"])
        return answer

    async def logout(self) -> None:
        """``POST /logout``: the token is revoked and the live session kicked (state ``closed``)."""
        await self._call("POST", "/logout")

    async def me(self) -> dict[str, Any]:
        """``GET /me`` -> ``{username, online, node}``."""
        return await self._call("GET", "/me")

    async def send(
        self, to: str, body: str, *, client_msg_id: str | None = None, delay_ms: int | None = None
    ) -> SendResult:
        """``POST /messages``. Transport errors and 503 are retried (a few times, with
        backoff) under the same ``client_msg_id``, so a retry never stores twice."""
        payload: dict[str, Any] = {"to": to, "body": body, "client_msg_id": client_msg_id or uuid.uuid4().hex}
        if delay_ms is not None:
            payload["delay_ms"] = delay_ms
        answer = await self._with_retries(lambda: self._call("POST", "/messages", json=payload))
        return SendResult(
            id=answer["id"],
            seq=answer.get("seq"),
            ts=answer["ts"],
            status=answer["status"],
            due=answer.get("due"),
        )

    async def broadcast(self, body: str) -> int:
        """``POST /broadcast`` to every online user but me; returns the recipient count."""
        answer = await self._call("POST", "/broadcast", json={"body": body})
        return int(answer["recipients"])

    async def create_group(self, name: str, members: list[str]) -> dict[str, Any]:
        """``POST /groups`` -> ``{name, members}`` (the creator is a member)."""
        return await self._call("POST", "/groups", json={"name": name, "members": list(members)})

    async def update_group(
        self, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> dict[str, Any]:
        """``POST /groups/{name}/members`` -> ``{name, members}``."""
        return await self._call(
            "POST", f"/groups/{name}/members", json={"add": list(add), "remove": list(remove)}
        )

    async def groups(self) -> list[dict[str, Any]]:
        """``GET /groups`` -> my groups, each ``{name, members}``."""
        return (await self._call("GET", "/groups"))["groups"]

    async def send_group(
        self, name: str, body: str, *, client_msg_id: str | None = None, delay_ms: int | None = None
    ) -> dict[str, Any]:
        """``POST /groups/{name}/messages`` -> ``{id, recipients}``; retried like ``send``."""
        payload: dict[str, Any] = {"body": body, "client_msg_id": client_msg_id or uuid.uuid4().hex}
        if delay_ms is not None:
            payload["delay_ms"] = delay_ms
        return await self._with_retries(lambda: self._call("POST", f"/groups/{name}/messages", json=payload))

    async def online(self, prefix: str = "", limit: int = 100) -> tuple[list[str], int]:
        """``GET /users/online`` -> (usernames, total before ``limit``)."""
        answer = await self._call("GET", "/users/online", params={"prefix": prefix, "limit": limit})
        return list(answer["users"]), int(answer["total"])

    async def history(
        self,
        *,
        with_user: str | None = None,
        group: str | None = None,
        q: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """``GET /history`` with one user or one group, newest first."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("with", with_user), ("group", group), ("q", q), ("before", before)):
            if value is not None:
                params[key] = value
        answer = await self._call("GET", "/history", params=params)
        return [Message.from_wire(m) for m in answer["messages"]]

    async def _with_retries(self, call: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(1, _SEND_ATTEMPTS + 1):
            try:
                return await call()
            except (httpx.TransportError, CimApiError) as exc:
                if attempt == _SEND_ATTEMPTS or (isinstance(exc, CimApiError) and exc.status != 503):
                    raise
                delay = _SEND_RETRY_BASE_S * 2 ** (attempt - 1)
                log.info("send attempt %d failed (%s), retrying in %.2fs", attempt, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _need_password(self) -> str:
        if not self.password:
            raise CimError("no_password", "this call needs the password")
        return self.password

    # ----- TCP session ---------------------------------------------------------

    async def connect(self) -> None:
        """Log in (through the route when a password is known) and open the session.

        Returns once ``welcome`` arrived; errors of this first attempt are raised
        (``CimApiError`` for the route, ``CimError`` with a frame error code,
        ``OSError``). Afterwards the session heals itself until ``close()``.
        """
        if self._supervisor is not None and not self._supervisor.done():
            raise CimError("already_connected", "connect() was already called")
        self._supervisor = None
        self._closing = False
        self.close_reason = None
        self._set_state(ConnectionState.CONNECTING)
        try:
            link = await self._open(first=True)
        except BaseException:
            self._set_state(ConnectionState.CLOSED)
            raise
        self._link = link
        self._set_state(ConnectionState.READY)
        self._supervisor = asyncio.create_task(self._supervise(link), name=f"cim-client-{self.username}")

    async def close(self) -> None:
        """Say ``bye``, stop every task, close the connection and the HTTP client. Idempotent."""
        self._closing = True
        link = self._link
        if link is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await link.send({"t": FrameType.BYE.value})
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if link is not None:  # the supervisor closes its links, unless cancelled before it ran
            await link.close()
        self._link = None
        self._end()
        if self._own_http and not self._http_closed:
            self._http_closed = True
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def messages(self) -> AsyncIterator[Message]:
        """Every message in order; ends once the session is closed and the queue is empty."""
        while True:
            try:
                yield await self._take(None)
            except ConnectionClosed:
                return

    async def next_message(self, timeout: float) -> Message:
        """The next message; ``TimeoutError`` after ``timeout`` s, ``ConnectionClosed`` at the end."""
        return await self._take(timeout)

    async def _take(self, timeout: float | None) -> Message:
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

    async def pick_node(self) -> NodeAddress:
        """``POST /connect``: a node to connect to, for the token this client holds."""
        answer = await self._call("POST", "/connect")
        self.node = NodeAddress.from_wire(answer["node"])
        return self.node

    async def _resolve_node(self, first: bool) -> NodeAddress:
        """The node of the next attempt: a fresh ``/login`` with a password, else a node
        for the token (the one given at first, then whatever the route picks)."""
        if self.password:
            await self.login()
        elif self.token and (self.node is None or not first):
            await self.pick_node()
        if self.node is None or not self.token:
            raise CimError("no_node", "no node to connect to: give a password or a token")
        return self.node

    async def _open(self, first: bool = False) -> _Link:
        """Login through the route, connect, send ``login``, wait for ``welcome``."""
        node = await self._resolve_node(first)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel from close().
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(node.host, node.port)
        try:
            login: dict[str, Any] = {"t": FrameType.LOGIN.value, "token": self.token}
            if self._send_last_seq:
                login["last_seq"] = self.last_seq
            writer.write(encode(login))
            decoder = FrameDecoder(_MAX_INCOMING_FRAME)
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                welcome, pending = await self._await_welcome(reader, decoder)
        except BaseException:
            writer.close()
            raise
        # From now on we hold everything up to last_seq: say so on every later login.
        self.last_seq = max(self.last_seq, int(welcome.get("last_seq") or 0))
        self._send_last_seq = True
        node = NodeAddress(str(welcome.get("node") or node.id), node.host, node.port)
        self.node = node
        return _Link(reader, writer, decoder, pending, node, float(welcome.get("heartbeat_s") or 30))

    @staticmethod
    async def _await_welcome(
        reader: asyncio.StreamReader, decoder: FrameDecoder
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        while True:
            data = await reader.read(65536)
            if not data:
                raise EOFError("the node closed the connection before welcome")
            frames = list(decoder.feed(data))
            for i, frame in enumerate(frames):
                kind = frame.get("t")
                if kind == FrameType.WELCOME:
                    return frame, frames[i + 1 :]
                if kind == FrameType.ERROR:
                    raise CimError(str(frame.get("code")), str(frame.get("reason", "")))
                if kind == FrameType.KICK:
                    raise CimError(str(frame.get("reason")), "kicked during login")

    async def _supervise(self, link: _Link) -> None:
        """Keep the session up until ``close()`` or a final end."""
        current: _Link | None = link
        try:
            while current is not None and not self._closing:
                self._link = current
                self._set_state(ConnectionState.READY)
                ended = await self._serve(current)
                self._link = None
                await current.close()
                if ended.final or self._closing:
                    self.close_reason = ended.reason
                    if ended.kick and self._on_kick is not None:
                        self._notify_kick(ended.reason)
                    break
                log.info("%s: connection to %s ended (%s)", self.username, current.node.id, ended.reason)
                current = await self._reconnect(0 if ended.at_once else 1)
        finally:
            if self._link is not None:
                await self._link.close()
                self._link = None
            self._end()

    def _notify_kick(self, reason: str) -> None:
        assert self._on_kick is not None
        try:
            self._on_kick(reason)
        except Exception:
            log.exception("on_kick callback failed")

    async def _reconnect(self, attempt: int) -> _Link | None:
        """Try until a link is up (None: a final refusal; close_reason says why)."""
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
                return bool(self.password)  # the next /login brings a fresh token
            if code in set(KickReason):
                return KickReason(code).reconnect
            if code in set(ErrorCode):
                return ErrorCode(code).reconnect
            return False
        return retryable(exc)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(max, min * 2^(attempt-1))]."""
        return random.uniform(0.0, min(self._backoff_max, self._backoff_min * 2 ** (attempt - 1)))

    async def _serve(self, link: _Link) -> _Ended:
        """Run the reader, heartbeat and acker of one link until one of them ends it."""
        tasks = [
            asyncio.create_task(self._read(link)),
            asyncio.create_task(self._heartbeat(link)),
            asyncio.create_task(self._acks(link)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        exc = next(iter(done)).exception()
        if isinstance(exc, _Ended):
            return exc
        return _Ended(repr(exc) if exc else "connection closed")

    async def _read(self, link: _Link) -> None:
        """Handle frames until the link ends (always by raising ``_Ended``)."""
        try:
            pending, link.pending = link.pending, []
            for frame in pending:  # those that came in with welcome
                await self._handle(frame)
            while True:
                data = await link.reader.read(65536)
                if not data:
                    raise _Ended("eof")
                link.last_rx = time.monotonic()
                for frame in link.decoder.feed(data):
                    await self._handle(frame)
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

    async def _heartbeat(self, link: _Link) -> None:
        """Ping every ``heartbeat_s``; a node silent for 2.5 periods is taken for dead."""
        period = max(0.05, link.heartbeat_s)
        while True:
            await asyncio.sleep(period)
            if time.monotonic() - link.last_rx > 2.5 * period:
                raise _Ended("heartbeat timeout")
            async with asyncio.timeout(period):
                await link.send({"t": FrameType.PING.value})

    async def _acks(self, link: _Link) -> None:
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
            await link.send({"t": FrameType.ACK.value, "seq": seq})
            self._acked_seq = seq
