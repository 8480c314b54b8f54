"""``/messages`` (to one user, now or later) and ``/broadcast`` (to everyone online)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cim_route.api.schemas import (
    API_PREFIX,
    Body,
    ClientMsgId,
    DelayMs,
    Name,
    check_body,
    check_delay,
)
from cim_route.auth import Sending, SendingCaller
from cim_route.context import Context, Ctx
from cim_route.send import Direct
from shared import views
from shared.message import new_message_id
from shared.protocol import MessageKind

__all__ = ["Accepted", "NewMessage", "router", "send_now"]

router = APIRouter(prefix=API_PREFIX, tags=["messages"])


class NewMessage(BaseModel):
    to: Name
    body: Body
    client_msg_id: ClientMsgId | None = None
    delay_ms: DelayMs | None = None


class Accepted(BaseModel):
    id: str
    seq: int | None
    ts: int
    status: str
    due: int | None = None


@router.post("/messages", status_code=202, response_model_exclude_unset=True, summary="Send to one user")
async def send(ctx: Ctx, caller: Sending, msg: NewMessage) -> Accepted:
    """202 ``{id, seq, ts, status}`` (``delivered``: the recipient has a session; ``stored``: it
    will get it at its next login); with ``delay_ms``: ``{id, seq: null, ts, status: "scheduled",
    due}``. 404 ``unknown_user``, 413 ``too_large``, 429 ``rate_limited``."""
    check_body(ctx, msg.body)
    delay = check_delay(ctx, msg.delay_ms)
    if not delay:
        result = await send_now(ctx, caller, msg.to, msg.body, msg.client_msg_id)
        return Accepted(id=result.id, seq=result.seq, ts=result.ts, status=result.status)
    sender = caller.username
    await ctx.guard.admit(ctx.redis, sender, caller.token, to=msg.to)
    scope = f"sched:{msg.client_msg_id}" if msg.client_msg_id else None
    answer = await ctx.scheduler.schedule(
        kind=MessageKind.P2P,
        sender=sender,
        body=msg.body,
        delay_ms=delay,
        target={"to": msg.to},
        answer={},
        idem_scope=scope,
    )
    return Accepted(**answer)


async def send_now(
    ctx: Context, caller: SendingCaller, to: str, body: str, client_msg_id: str | None
) -> Direct:
    """A checked p2p send (``POST /messages`` without delay; also the lean endpoint's)."""
    sender = caller.username
    return await ctx.sender.direct(
        sender=sender,
        to=to,
        body=body,
        msg_id=new_message_id(),
        idem_scope=f"p2p:{sender}:{client_msg_id}" if client_msg_id else None,
        token=caller.token,
        device=caller.token.device,
    )


class NewBroadcast(BaseModel):
    body: Body


class FanOutAnswer(BaseModel):
    id: str
    recipients: int


@router.post("/broadcast", status_code=202, summary="Send to every online user")
async def broadcast(ctx: Ctx, caller: Sending, msg: NewBroadcast) -> FanOutAnswer:
    """202 ``{id, recipients}``: every online user but the sender; not stored (seq 0). It
    takes one rate-limit token per user online (429 ``rate_limited``)."""
    check_body(ctx, msg.body)
    online = await views.online_total(ctx.redis, ctx.keys)
    await ctx.guard.admit(ctx.redis, caller.username, caller.token, cost=max(1, online - 1))
    result = await ctx.sender.to_online(
        sender=caller.username,
        body=msg.body,
        kind=MessageKind.BROADCAST,
        exclude=caller.username,
        online=online,
    )
    return FanOutAnswer(id=result.id, recipients=result.recipients)
