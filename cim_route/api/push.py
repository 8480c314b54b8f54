"""``/push`` (API key): server-side messages from ``system``."""

from __future__ import annotations

from typing import Literal

import msgpack
from fastapi import APIRouter
from pydantic import BaseModel

from cim_route.api.schemas import (
    API_PREFIX,
    Body,
    ClientMsgId,
    Name,
    check_body,
    require_known,
    unknown_users,
)
from cim_route.auth import ApiKey
from cim_route.context import Context, Ctx
from cim_route.send import SYSTEM_SENDER, FanOut
from shared import views
from shared.errors import ApiError
from shared.message import new_message_id
from shared.protocol import MessageKind

router = APIRouter(prefix=API_PREFIX, tags=["push"], dependencies=[ApiKey])


class NewPush(BaseModel):
    to: list[Name] | Literal["*"]
    body: Body
    client_msg_id: ClientMsgId | None = None


class Pushed(BaseModel):
    id: str
    recipients: int


@router.post("/push", status_code=202, summary="Push to users (stored) or to everyone online")
async def push(ctx: Ctx, msg: NewPush) -> Pushed:
    """``to`` a list: stored in each inbox (kind ``push``, from ``system``; 404 ``unknown_user``
    if any is not registered); ``"*"``: every online user, not stored. Either takes one token
    per recipient of the ``system`` bucket (``CIM_RATE_LIMIT``; 429 ``rate_limited``)."""
    check_body(ctx, msg.body)
    if msg.to == "*":
        online = await views.online_total(ctx.redis, ctx.keys)
        await ctx.guard.admit(ctx.redis, SYSTEM_SENDER, None, cost=max(1, online))
        result = await _push_online(ctx, msg, online)
    else:
        targets = sorted(set(msg.to))
        if not targets or len(targets) > ctx.settings.group_max:
            raise ApiError(
                422, "invalid_request", f"'to' lists 1 to {ctx.settings.group_max} users or is '*'"
            )
        require_known(await unknown_users(ctx, targets))
        await ctx.guard.admit(ctx.redis, SYSTEM_SENDER, None, cost=len(targets))
        result = await ctx.sender.fan_out(
            sender=SYSTEM_SENDER,
            targets=targets,
            body=msg.body,
            kind=MessageKind.PUSH,
            msg_id=new_message_id(),
            idem_scope=f"push:{msg.client_msg_id}" if msg.client_msg_id else None,
        )
    return Pushed(id=result.id, recipients=result.recipients)


async def _push_online(ctx: Context, msg: NewPush, online: int) -> FanOut:
    """Push to ``"*"``; with ``client_msg_id`` a repeat within the idempotency period answers
    the first answer and publishes nothing."""
    idem_key = ctx.keys.idem(SYSTEM_SENDER, f"push-all:{msg.client_msg_id}") if msg.client_msg_id else None
    if idem_key is not None and (previous := await ctx.redis.get(idem_key)) is not None:
        return FanOut(*msgpack.unpackb(previous))
    result = await ctx.sender.to_online(
        sender=SYSTEM_SENDER, body=msg.body, kind=MessageKind.PUSH, exclude=None, online=online
    )
    if idem_key is not None:
        packed = msgpack.packb([result.id, result.recipients])
        await ctx.redis.set(idem_key, packed, ex=ctx.settings.idempotency_s)
    return result
