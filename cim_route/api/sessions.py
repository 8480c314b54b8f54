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
from shared.protocol import NAME_RE, KickReason

router = APIRouter(prefix=API_PREFIX, tags=["sessions"], dependencies=[ApiKey])
log = logging.getLogger(__name__)


@router.delete("/sessions/{username}", status_code=204, summary="Kick a user")
async def kick(ctx: Ctx, username: Annotated[str, Path(pattern=NAME_RE.pattern)]) -> Response:
    """204: the user's connection gets ``kick{revoked}`` and its session is released (204 too
    when it has none); 404 ``unknown_user``."""
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.exists(ctx.keys.user(username))
        sessions.queue_lookup(pipe, ctx.keys, username)
        exists, reply = await pipe.execute()
    if not exists:
        raise ApiError(404, "unknown_user", f"no such user: {username}")
    session = sessions.session_of(reply)
    if session is not None:
        await bus.publish_kick(
            ctx.nats, bus.node_subject(session.node), username, KickReason.REVOKED.value, session.conn or None
        )
        await sessions.release(ctx.redis, ctx.scripts, ctx.keys, username, session.node, session.conn or "*")
        log.info("session of %s on node %s kicked by an operator", username, session.node)
    return Response(status_code=204)
