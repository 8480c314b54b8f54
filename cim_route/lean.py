"""The lean endpoint of the hottest call, ``POST /api/v1/messages``, ahead of FastAPI.

FastAPI's routing, dependency solving and middleware cost more CPU than the rest of a send
together. ``LeanSend`` answers the ordinary case itself: a JSON body that is plainly valid
(``to`` a username, a non-empty ``body`` within ``CIM_MAX_BODY``, an optional
``client_msg_id``, no delay) and a bearer token whose signature and expiry check out. Every
other request -- a delayed send, anything FastAPI would refuse (401, 413, 422), any other
content type -- goes on to FastAPI with its body replayed, so those answers, the OpenAPI
document and the error envelope are exactly FastAPI's. The checks made in Redis (revoked 401,
429, unknown user 404) and backend failures (503) are rendered by the app's own exception
handlers.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cim_route.api.messages import send_now
from cim_route.api.schemas import API_PREFIX
from cim_route.auth import SendingCaller, verified
from cim_route.bodies import read_body, replay
from cim_route.context import Context
from shared.errors import ApiError
from shared.protocol import NAME_RE

__all__ = ["LeanSend"]

PATH = f"{API_PREFIX}/messages"
_MAX_CLIENT_MSG_ID = 128
_JSON = [(b"content-type", b"application/json")]
_ROUTE = SimpleNamespace(path=PATH)
"""``scope["route"]`` of a request answered here: its ``path`` labels the request metrics."""


class LeanSend:
    """ASGI wrapper: ``POST /api/v1/messages`` answered here when it can be, else by ``app``."""

    def __init__(self, inner: ASGIApp, app: FastAPI) -> None:
        self._inner = inner
        self._app = app

    @staticmethod
    def handles(scope: Scope) -> bool:
        """Whether the request is one this endpoint may answer."""
        return scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.handles(scope):
            await self._inner(scope, receive, send)
            return
        ctx: Context = self._app.state.context
        chunks, more = await read_body(receive, 2 * ctx.settings.max_body + 4096)
        raw = b"".join(chunks)
        request = None if more else _plain_send(ctx, scope, raw)
        if request is None:
            await self._inner(scope, replay(raw, more, receive), send)
            return
        scope["route"] = _ROUTE  # what FastAPI's routing would have put there
        caller, to, body, client_msg_id = request
        try:
            result = await send_now(ctx, caller, to, body, client_msg_id)
        except Exception as exc:
            await self._handled(exc, scope, receive, send)
            return
        answer = {"id": result.id, "seq": result.seq, "ts": result.ts, "status": result.status}
        await _respond(send, 202, orjson.dumps(answer))

    async def _handled(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``exc`` with the app's handler for it (the error envelope); re-raise if none."""
        for cls in type(exc).__mro__:
            handler = self._app.exception_handlers.get(cls)
            if handler is not None:
                response = await handler(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        raise exc


def _plain_send(ctx: Context, scope: Scope, raw: bytes) -> tuple[SendingCaller, str, str, str | None] | None:
    """The caller, ``to``, ``body`` and ``client_msg_id`` of an ordinary send, or None when
    FastAPI should answer it."""
    content_type = bearer = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"authorization":
            bearer = value
    if content_type != b"application/json" or bearer is None or not bearer.startswith(b"Bearer "):
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    to, body, client_msg_id = data.get("to"), data.get("body"), data.get("client_msg_id")
    delay = data.get("delay_ms")
    if not (isinstance(to, str) and NAME_RE.fullmatch(to) and isinstance(body, str) and body):
        return None
    if client_msg_id is not None and not (
        isinstance(client_msg_id, str) and 0 < len(client_msg_id) <= _MAX_CLIENT_MSG_ID
    ):
        return None
    if not (delay is None or (type(delay) is int and delay == 0)):
        return None
    if len(body.encode()) > ctx.settings.max_body:  # orjson refuses lone surrogates: encode can't fail
        return None
    try:
        token = verified(ctx, bearer[7:].decode("latin-1"))
    except ApiError:
        return None
    return SendingCaller(token), to, body, client_msg_id


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers: list[Any] = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
