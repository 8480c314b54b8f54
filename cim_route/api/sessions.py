"""``/sessions`` (API key): an operator closes a user's session and revokes its tokens."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from redis.asyncio.client import Pipeline

from cim_route.api.schemas import API_PREFIX
from cim_route.auth import ApiKey
from cim_route.context import Context, Ctx
from shared import bus, sessions
from shared.errors import ApiError
from shared.message import now_ms
from shared.protocol import NAME_RE, KickReason

__all__ = ["revoke_tokens", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["sessions"], dependencies=[ApiKey])
log = logging.getLogger(__name__)


def revoke_tokens(ctx: Context, pipe: Pipeline, username: str, keep: str = "") -> None:
    """Queue on ``pipe`` the token epoch that revokes every token of ``username`` issued until
    now but the one whose jti is ``keep``; it lasts as long as such a token could."""
    key = ctx.keys.token_epoch(username)
    pipe.hset(key, mapping={"at": now_ms() + 1, "keep": keep})
    pipe.expire(key, ctx.settings.token_ttl + 1)


@router.delete("/sessions/{username}", status_code=204, summary="Kick a user and revoke its tokens")
async def kick(
    ctx: Ctx,
    username: Annotated[str, Path(pattern=NAME_RE.pattern)],
    revoke: Annotated[bool, Query(description="also revoke every token issued so far")] = True,
) -> Response:
    """204: every connection (device) of the user gets ``kick{revoked}`` and its session is
    released (204 too when it has none); every token issued to the user until now stops
    working at the route and at the nodes (``?revoke=false``: kick only). 404 ``unknown_user``."""
    if not await ctx.redis.exists(ctx.keys.user(username)):
        raise ApiError(404, "unknown_user", f"no such user: {username}")
    if revoke:
        async with ctx.redis.pipeline(transaction=True) as pipe:
            revoke_tokens(ctx, pipe, username)
            await pipe.execute()
        log.info("tokens of %s revoked by an operator", username)
    for d in await sessions.devices(ctx.redis, ctx.keys, username):
        await bus.publish_kick(
            ctx.nats, bus.node_subject(d.node), username, KickReason.REVOKED.value, d.conn, d.device
        )
        await sessions.release(ctx.redis, ctx.scripts, ctx.keys, username, d.device, d.node, d.conn)
        log.info("session of %s/%s on node %s kicked by an operator", username, d.device, d.node)
    return Response(status_code=204)
