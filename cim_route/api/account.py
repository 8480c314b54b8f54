"""A user's own session: ``/login``, ``/logout``, ``/me``, ``/me/password``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from cim_route.address import client_address
from cim_route.api.schemas import API_PREFIX, Name, Password
from cim_route.api.sessions import revoke_tokens
from cim_route.auth import Caller
from cim_route.context import Context, Ctx
from cim_route.guard import RateLimited
from cim_route.passwords import hash_password, verify_password
from shared import bus, sessions, tokens
from shared.errors import ApiError
from shared.message import now_ms
from shared.protocol import KickReason

router = APIRouter(prefix=API_PREFIX, tags=["account"])
log = logging.getLogger(__name__)


class Credentials(BaseModel):
    # Not the username pattern: a name that cannot exist is simply bad credentials.
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    device: Name = tokens.DEFAULT_DEVICE
    """v0.2: which of the user's devices logs in (the token carries it)."""


class NodeAddress(BaseModel):
    id: str
    host: str
    port: int
    ws_url: str | None = None
    """``ws://host:port/ws`` for browsers, or null when the node has no WebSocket listener."""
    tls: bool = False
    """Whether the node's client listener speaks TLS (``CIM_TLS_CERT``): connect with TLS."""


class LoginAnswer(BaseModel):
    username: str
    token: str
    expires_at: int
    node: NodeAddress


@router.post("/login", summary="Log in: a token and the node to connect to")
async def login(ctx: Ctx, creds: Credentials, request: Request) -> LoginAnswer:
    """401 ``bad_credentials`` (unknown user too); 429 ``rate_limited`` (with ``Retry-After``)
    when the client address calls too often (``CIM_AUTH_RATE``) or tried too many wrong
    passwords for this username (``CIM_LOGIN_MAX_FAILURES``; other addresses are not held
    back); 503 ``no_nodes`` when no node takes logins."""
    address = client_address(request.scope, ctx.proxies)
    await _check_password(ctx, address, creds.username, creds.password)
    node = await _pick_node(ctx, creds.username)
    token, claims = tokens.issue(
        ctx.settings.secret, creds.username, ctx.settings.token_ttl, device=creds.device
    )
    ctx.metrics.logins.labels("ok").inc()
    log.info("login %s from %s -> node %s (token %s)", creds.username, address, node.id, claims.jti)
    return LoginAnswer(
        username=creds.username,
        token=token,
        expires_at=claims.expires_at,
        node=node,
    )


async def _check_password(ctx: Context, address: str, username: str, password: str) -> None:
    """Pass the gate (429), then the password: 401 ``bad_credentials`` if it is wrong."""
    try:
        (pw_hash,) = await ctx.gate.enter(
            ctx.redis, address, username, then=[("HGET", ctx.keys.user(username), "pw")]
        )
    except RateLimited:
        ctx.metrics.logins.labels("locked").inc()
        raise
    encoded = pw_hash.decode() if pw_hash is not None else None
    if not await verify_password(password, encoded, ctx.settings.scrypt_n):
        ctx.metrics.logins.labels("bad_credentials").inc()
        log.info("wrong password for %s from %s", username, address)
        raise ApiError(401, "bad_credentials", "wrong username or password")
    await ctx.gate.passed(ctx.redis, address, username)


async def _pick_node(ctx: Context, username: str) -> NodeAddress:
    nodes = await ctx.view.accepting_now()
    if not nodes:
        ctx.metrics.logins.labels("no_nodes").inc()
        raise ApiError(503, "no_nodes", "no connection node is taking logins")
    node = ctx.balancer.pick(nodes, username)
    return NodeAddress(id=node.id, host=node.host, port=node.port, ws_url=node.ws_url, tls=node.tls)


class ConnectAnswer(BaseModel):
    node: NodeAddress


class ConnectRequest(BaseModel):
    device: Name | None = None
    """v0.2: the device the token was issued for (it is the token's; another is 422)."""


@router.post("/connect", summary="A node to connect to, for a client that holds a valid token")
async def connect(ctx: Ctx, caller: Caller, body: ConnectRequest | None = None) -> ConnectAnswer:
    """Like ``/login`` without the password: a client whose node went away asks for another
    with the token it has (cim's addition to the contract). 503 ``no_nodes``; 422 when
    ``device`` is not the token's."""
    if body is not None and body.device is not None and body.device != caller.device:
        raise ApiError(422, "invalid_request", f"the token is for device {caller.device}, not {body.device}")
    node = await _pick_node(ctx, caller.username)
    log.info("connect %s -> node %s", caller.username, node.id)
    return ConnectAnswer(node=node)


@router.post("/logout", status_code=204, summary="Revoke the token and close the session")
async def logout(ctx: Ctx, caller: Caller) -> Response:
    ttl_ms = max(1, caller.expires_at - now_ms())
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.set(ctx.keys.revoked(caller.jti), b"1", px=ttl_ms)
        pipe.hget(ctx.keys.session(caller.username), caller.device)
        _, session = await pipe.execute()
    if session is not None:  # the token's device only: the user's other devices stay
        node, conn, _ = session.decode().split(" ")
        await bus.publish_kick(
            ctx.nats, bus.node_subject(node), caller.username, KickReason.LOGOUT.value, conn, caller.device
        )
    log.info("logout %s (token %s revoked)", caller.username, caller.jti)
    return Response(status_code=204)


class DeviceInfo(BaseModel):
    device: str
    node: str


class Me(BaseModel):
    username: str
    online: bool
    node: str | None
    """The node of the caller's own device (its token's), else of its longest-connected one."""
    devices: list[DeviceInfo]
    """v0.2: every online device of the caller, longest-connected first."""


@router.get("/me", summary="The caller and where its devices are connected")
async def me(ctx: Ctx, caller: Caller) -> Me:
    online = await sessions.devices(ctx.redis, ctx.keys, caller.username)
    own = next((d for d in online if d.device == caller.device), online[0] if online else None)
    return Me(
        username=caller.username,
        online=bool(online),
        node=own.node if own else None,
        devices=[DeviceInfo(device=d.device, node=d.node) for d in online],
    )


class PasswordChange(BaseModel):
    old: Annotated[str, Field(min_length=1, max_length=1024)]
    new: Password


@router.post("/me/password", status_code=204, summary="Change the password; revoke the other tokens")
async def change_password(ctx: Ctx, caller: Caller, change: PasswordChange, request: Request) -> Response:
    """204: the new password holds from now on, and every other token of the user (issued
    before this call) is revoked at the route and the nodes; the caller's own stays valid.
    401 ``bad_credentials`` if ``old`` is wrong; 429 as for ``/login``."""
    address = client_address(request.scope, ctx.proxies)
    await _check_password(ctx, address, caller.username, change.old)
    pw_hash = await hash_password(change.new, ctx.settings.scrypt_n)
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.hset(ctx.keys.user(caller.username), "pw", pw_hash)
        revoke_tokens(ctx, pipe, caller.username, keep=caller.jti)
        await pipe.execute()
    log.info("password of %s changed from %s; its other tokens revoked", caller.username, address)
    return Response(status_code=204)
