"""``/sessions`` (API key): an operator closes a user's session."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response

from cim_route.api.schemas import API_PREFIX
from cim_route.auth import ApiKey
from cim_route.context import Ctx
from shared import bus, sessions
from shared.errors import ApiError
from shared.protocol import KickReason
from shared.settings import NAME_RE

router = APIRouter(prefix=API_PREFIX, tags=["sessions"], dependencies=[ApiKey])
log = logging.getLogger(__name__)


@router.delete("/sessions/{username}", status_code=204, summary="Kick a user")
async def kick(ctx: Ctx, username: Annotated[str, Path(pattern=NAME_RE.pattern)]) -> Response:
    """204: every connection (device) of the user gets ``kick{revoked}`` and its session is
    released (204 too when it has none); 404 ``unknown_user``."""
    if not await ctx.redis.exists(ctx.keys.user(username)):
        raise ApiError(404, "unknown_user", f"no such user: {username}")
    for d in await sessions.devices(ctx.redis, ctx.keys, username):
        await ctx.nats.publish(
            bus.node_subject(d.node), bus.kick(username, KickReason.REVOKED.value, d.conn, d.device)
        )
        await sessions.release(ctx.redis, ctx.scripts, ctx.keys, username, d.device, d.node, d.conn)
        log.info("session of %s/%s on node %s kicked by an operator", username, d.device, d.node)
    return Response(status_code=204)
