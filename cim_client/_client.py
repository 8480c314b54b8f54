"""``Client``: a cim user's HTTP calls through the route plus one self-healing node session.

A ``Client`` logs in through the route (``POST /login`` names a node and gives a
token) and hands the node and token to its ``NodeLink`` (``_link.py``), which
keeps the session up over TCP or a WebSocket. Each reconnect asks for a node again: a fresh
``/login`` when the password is known, else ``POST /connect`` for the token.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Self

import httpx

from cim_client._exceptions import CimApiError, CimError
from cim_client._http import RouteHttp, with_retries
from cim_client._link import NodeLink
from cim_client._models import ConnectionState, Message, NodeAddress, SendResult
from cim_client._socket import TRANSPORTS
from cim_client._tls import tls_context

__all__ = ["Client"]


class Client:
    """A cim user: HTTP calls through the route and a self-healing node session.

    ``password`` lets the client log in (again) through the route whenever it
    needs a node or a fresh token; with only ``token`` it can make HTTP calls
    and connect to ``node`` (keyword), but cannot move to another node.
    ``last_seq`` is the highest seq the application already holds (from a
    previous run); without it the node replays after the server-side ack cursor (each
    ``device`` has its own; a device's first login starts after the newest any device of
    the user acked). ``device`` names this client among the user's devices (v0.2): a login
    of the same device elsewhere replaces this one (``duplicate_login``).
    ``on_message`` replaces the queue behind ``messages()``: it is awaited for
    each message in order, and the message counts as taken when it returns.
    ``transport``: ``"tcp"`` (the frame protocol on the node's port) or ``"ws"``
    (the same frames over the node's WebSocket, ``ws_url``; needs ``websockets``).
    An ``https://`` route and a node whose login answer says ``tls`` are checked
    against ``tls_ca`` (a PEM bundle; default ``$CIM_TLS_CA``, else the system store).
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
        transport: str = "tcp",
        tls_ca: str | None = None,
        device: str = "default",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        self.route_url = route_url.rstrip("/")
        self.username = username
        self.device = device
        self.password = password
        self.token = token
        self._route = RouteHttp(route_url, http, tls_ca)
        self._login_unused = False
        """A ``/login`` answer is at hand that no connection has used yet: the first
        ``connect()`` takes it instead of logging in (and being balanced) again."""
        self._link = NodeLink(
            username,
            self._next_node,
            lambda: bool(self.password),
            on_message=on_message,
            on_state=on_state,
            on_kick=on_kick,
            last_seq=last_seq,
            queue_size=queue_size,
            backoff_min=backoff_min,
            backoff_max=backoff_max,
            node=node,
            transport=transport,
            tls=tls_context(tls_ca),
        )

    # ----- the session's state (kept by the link) ------------------------------------------

    @property
    def node(self) -> NodeAddress | None:
        """The node of the live session, else the one the last ``/login`` or ``/connect`` named."""
        return self._link.node

    @node.setter
    def node(self, node: NodeAddress | None) -> None:
        self._link.node = node

    @property
    def state(self) -> ConnectionState:
        """Where the TCP session is (see ``ConnectionState``)."""
        return self._link.state

    @property
    def last_seq(self) -> int:
        """The highest seq this client holds; save it to pass back as ``Client(last_seq=...)``."""
        return self._link.last_seq

    @property
    def duplicates_dropped(self) -> int:
        """Stored messages the node sent again and the client did not hand out twice."""
        return self._link.duplicates_dropped

    @property
    def close_reason(self) -> str | None:
        """Why the session ended (a kick reason or an error code), when it did."""
        return self._link.close_reason

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
        headers = self._auth() if auth else None
        try:
            return await self._route.call(method, path, json=json, params=params, headers=headers)
        except CimApiError as exc:
            if exc.status != 401 or not auth or not self.password:
                raise
        await self.login()
        return await self._route.call(method, path, json=json, params=params, headers=self._auth())

    def _auth(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self.token}"} if self.token else None

    async def register(self) -> None:
        """``POST /users``; ``CimApiError(409, "username_taken")`` when taken."""
        await self._call(
            "POST", "/users", json={"username": self.username, "password": self._need_password()}
        )

    async def login(self) -> dict[str, Any]:
        """``POST /login``: keeps the token and the node; returns the answer.

        The next ``connect()`` uses this answer rather than logging in again.
        """
        answer = await self._call(
            "POST",
            "/login",
            json={"username": self.username, "password": self._need_password(), "device": self.device},
            auth=False,
        )
        self.token = answer["token"]
        self.node = NodeAddress.from_wire(answer["node"])
        self._login_unused = True
        return answer

    async def logout(self) -> None:
        """``POST /logout``: the token is revoked and the live session kicked (state ``closed``)."""
        await self._call("POST", "/logout")

    async def me(self) -> dict[str, Any]:
        """``GET /me`` -> ``{username, online, node, devices: [{device, node}]}``."""
        return await self._call("GET", "/me")

    async def send(
        self, to: str, body: str, *, client_msg_id: str | None = None, delay_ms: int | None = None
    ) -> SendResult:
        """``POST /messages``. Transport errors and 503 are retried (a few times, with
        backoff) under the same ``client_msg_id``, so a retry never stores twice."""
        payload = _send_payload(body, client_msg_id, delay_ms, to=to)
        return SendResult.from_wire(await with_retries(lambda: self._call("POST", "/messages", json=payload)))

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
        payload = _send_payload(body, client_msg_id, delay_ms)
        return await with_retries(lambda: self._call("POST", f"/groups/{name}/messages", json=payload))

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

    # ----- v0.2: receipts, typing, edits ------------------------------------------------

    async def read(self, *, with_user: str | None = None, group: str | None = None, ts: int) -> None:
        """``POST /read``: I read the conversation with ``with_user`` (or ``group``) up to
        ``ts``. The other side and my other devices get a ``receipt`` (p2p only); a ``ts`` at
        or before the last one sends nothing."""
        await self._call("POST", "/read", json=_conversation(with_user, group, "with") | {"ts": ts})

    async def read_cursors(self, group: str) -> dict[str, int]:
        """``GET /read?group=``: member -> the ts it read the group up to."""
        return dict((await self._call("GET", "/read", params={"group": group}))["reads"])

    async def typing(self, *, to: str | None = None, group: str | None = None) -> None:
        """``POST /typing``: the other side's devices get a seq-0 ``typing`` (at most one a
        second per conversation reaches them; calling more often is harmless)."""
        await self._call("POST", "/typing", json=_conversation(to, group, "to"))

    async def edit(self, msg_id: str, body: str) -> None:
        """``PATCH /messages/{id}``: my message ``msg_id`` now reads ``body`` (an ``edit`` to
        every recipient and my devices). ``CimApiError`` 403 ``not_sender``, 404
        ``unknown_message``, 409 ``too_late``."""
        await self._call("PATCH", f"/messages/{msg_id}", json={"body": body})

    async def recall(self, msg_id: str) -> None:
        """``DELETE /messages/{id}``: take my message back (a ``recall``; history leaves it
        out). Errors as ``edit``."""
        await self._call("DELETE", f"/messages/{msg_id}")

    async def pick_node(self) -> NodeAddress:
        """``POST /connect``: a node to connect to, for the token this client holds."""
        answer = await self._call("POST", "/connect")
        self.node = NodeAddress.from_wire(answer["node"])
        return self.node

    def _need_password(self) -> str:
        if not self.password:
            raise CimError("no_password", "this call needs the password")
        return self.password

    # ----- TCP session ---------------------------------------------------------

    async def connect(self) -> None:
        """Log in (through the route when a password is known) and open the session.

        A ``login()`` answer that no connection used yet is used instead of a
        second ``/login``. Returns once ``welcome`` arrived; errors of this first
        attempt are raised (``CimApiError`` for the route, ``CimError`` with a
        frame error code, ``OSError``). Afterwards the session heals itself until
        ``close()``.
        """
        await self._link.connect()

    async def _next_node(self, first: bool) -> tuple[NodeAddress, str]:
        """The node and token of the next attempt: the unused login answer, else a fresh
        ``/login`` with a password, else a node for the token (the one given at first,
        then whatever the route picks)."""
        if not (first and self._login_unused):
            if self.password:
                await self.login()
            elif self.token and (self.node is None or not first):
                await self.pick_node()
        self._login_unused = False
        if self.node is None or not self.token:
            raise CimError("no_node", "no node to connect to: give a password or a token")
        return self.node, self.token

    async def close(self) -> None:
        """Say ``bye``, stop every task, close the connection and the HTTP client. Idempotent."""
        await self._link.close()
        await self._route.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def messages(self) -> AsyncIterator[Message]:
        """Every message in order; ends once the session is closed and the queue is empty."""
        return self._link.messages()

    async def next_message(self, timeout: float) -> Message:
        """The next message; ``TimeoutError`` after ``timeout`` s, ``ConnectionClosed`` at the end."""
        return await self._link.take(timeout)

    async def wait_for_state(self, state: ConnectionState, timeout: float) -> None:
        """Return once ``state`` is the current state; ``TimeoutError`` after ``timeout`` s."""
        await self._link.wait_for_state(state, timeout)


def _conversation(user: str | None, group: str | None, user_field: str) -> dict[str, str]:
    if (user is None) == (group is None):
        raise ValueError(f"give exactly one of {user_field} and group")
    return {user_field: user} if user is not None else {"group": group}  # type: ignore[dict-item]


def _send_payload(body: str, client_msg_id: str | None, delay_ms: int | None, **extra: str) -> dict[str, Any]:
    """The body of a send: ``client_msg_id`` made here when not given (retries reuse it)."""
    payload: dict[str, Any] = {**extra, "body": body, "client_msg_id": client_msg_id or uuid.uuid4().hex}
    if delay_ms is not None:
        payload["delay_ms"] = delay_ms
    return payload
