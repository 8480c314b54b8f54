"""``/messages`` (to one user, now or later) and ``/broadcast`` (to everyone online)."""

from __future__ import annotations

from typing import Any

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
    unknown_from,
)
from cim_route.auth import Sending
from cim_route.context import Ctx
from cim_route.send import new_message_id, now_ms
from shared.errors import ApiError
from shared.protocol import MessageKind

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
    sender = caller.username
    async with ctx.redis.pipeline(transaction=False) as pipe:
        caller.queue(pipe)
        await ctx.limiter.queue(pipe, sender)
        pipe.zmscore(ctx.keys.users, [msg.to])
        replies = ctx.limiter.check(caller.check(await ctx.scripts.execute(pipe)))
    if unknown_from([msg.to], replies[0]):
        raise ApiError(404, "unknown_user", f"no such user: {msg.to}")
    if delay:
        return Accepted(**await _schedule(ctx, sender, msg, delay))
    scope = f"p2p:{sender}:{msg.client_msg_id}" if msg.client_msg_id else None
    result = await ctx.sender.direct(
        sender=sender, to=msg.to, body=msg.body, msg_id=new_message_id(), idem_scope=scope
    )
    return Accepted(id=result.id, seq=result.seq, ts=result.ts, status=result.status)


async def _schedule(ctx: Ctx, sender: str, msg: NewMessage, delay: int) -> dict[str, Any]:
    msg_id, ts = new_message_id(), now_ms()
    due = ts + delay
    job = {
        "id": msg_id,
        "kind": MessageKind.P2P.value,
        "from": sender,
        "to": msg.to,
        "body": msg.body,
        "due": due,
    }
    answer = {"id": msg_id, "seq": None, "ts": ts, "status": "scheduled", "due": due}
    idem_key = ctx.keys.idem(sender, f"sched:{msg.client_msg_id}") if msg.client_msg_id else None
    return await ctx.scheduler.schedule(job, answer, idem_key)


class NewBroadcast(BaseModel):
    body: Body


class FanOutAnswer(BaseModel):
    id: str
    recipients: int


@router.post("/broadcast", status_code=202, summary="Send to every online user")
async def broadcast(ctx: Ctx, caller: Sending, msg: NewBroadcast) -> FanOutAnswer:
    """202 ``{id, recipients}``: every online user but the sender; not stored (seq 0)."""
    check_body(ctx, msg.body)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        caller.queue(pipe)
        await ctx.limiter.queue(pipe, caller.username)
        ctx.limiter.check(caller.check(await ctx.scripts.execute(pipe)))
    result = await ctx.sender.to_online(
        sender=caller.username, body=msg.body, kind=MessageKind.BROADCAST, exclude=caller.username
    )
    return FanOutAnswer(id=result.id, recipients=result.recipients)
