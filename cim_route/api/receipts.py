"""v0.2 ``/read`` (read cursors and receipts) and ``/typing`` (a seq-0 note, not stored).

``POST /read {with, ts}`` moves the reader's cursor of a p2p conversation forward and stores a
``receipt`` (``from`` the reader, ``with`` the other side, ``read_ts``) in the other side's
inbox and, as a carbon, in the reader's own (its other devices mark the conversation read). A
cursor only moves forward: a read at or before the stored one answers 204 and sends nothing,
so a client may call it for every message it shows. ``{group, ts}`` keeps the member's cursor
of the group only, read back by ``GET /read?group=``.

``POST /typing {to | group}`` reaches every online device of the other side (every member but
the caller in a group) at most once a second per pair; more often, it answers 204 and sends
nothing.
"""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, model_validator

from cim_route.api.groups import load_members
from cim_route.api.schemas import API_PREFIX, Name
from cim_route.auth import Caller, Sending
from cim_route.context import Ctx
from shared import sessions
from shared.message import new_message_id
from shared.protocol import NAME_RE, MessageKind

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["receipts"])

TYPING_EVERY_MS = 1000
"""At most one ``typing`` per pair (sender, conversation) this often."""


class _OneConversation(BaseModel):
    """Exactly one of ``with`` (a user) and ``group``."""

    with_: Name | None = Field(default=None, alias="with")
    group: Name | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.with_ is None) == (self.group is None):
            raise ValueError("give exactly one of 'with' and 'group'")
        return self


class Read(_OneConversation):
    ts: Annotated[int, Field(ge=0, description="every message up to this ts (ms) is read")]


@router.post("/read", status_code=204, summary="Mark a conversation read up to ts")
async def read(ctx: Ctx, caller: Sending, body: Read) -> Response:
    """204; a p2p read sends a ``receipt`` to the other side and the reader's devices.
    404 ``unknown_user`` / ``unknown_group``, 403 ``not_member``, 429."""
    reader = caller.username
    if body.group is not None:
        await load_members(ctx, body.group, reader, sending=caller)
        await ctx.redis.hset(ctx.keys.group_reads(body.group), reader, body.ts)
        return Response(status_code=204)
    peer = body.with_
    assert peer is not None
    (before,) = await ctx.guard.admit(
        ctx.redis, reader, caller.token, to=peer, then=[("HGET", ctx.keys.reads(reader), peer)]
    )
    if before is not None and int(before) >= body.ts:
        return Response(status_code=204)
    await ctx.redis.hset(ctx.keys.reads(reader), peer, body.ts)
    await ctx.sender.fan_out(
        sender=reader,
        targets=[peer] if peer != reader else [],
        body="",
        kind=MessageKind.RECEIPT,
        msg_id=new_message_id(),
        extra={"with": peer, "read_ts": body.ts},
        carbon_to=peer,
        device=caller.token.device,
    )
    return Response(status_code=204)


class GroupReads(BaseModel):
    reads: dict[str, int]
    """member -> the ts it read the group up to (members that never read are left out)."""


@router.get("/read", summary="The read cursors of a group's members")
async def group_reads(
    ctx: Ctx, caller: Caller, group: Annotated[str, Query(pattern=NAME_RE.pattern)]
) -> GroupReads:
    """Members only: 404 ``unknown_group``, 403 ``not_member``."""
    await load_members(ctx, group, caller.username)
    cursors = await ctx.redis.hgetall(ctx.keys.group_reads(group))
    return GroupReads(reads={k.decode(): int(v) for k, v in cursors.items()})


class Typing(BaseModel):
    to: Name | None = None
    group: Name | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.to is None) == (self.group is None):
            raise ValueError("give exactly one of 'to' and 'group'")
        return self


@router.post("/typing", status_code=204, summary="Tell the other side the caller is typing")
async def typing(ctx: Ctx, caller: Sending, body: Typing) -> Response:
    """204 (also when throttled: at most one a second per pair reaches anyone); a seq-0
    ``typing`` message, never stored nor replayed. 404 ``unknown_user`` / ``unknown_group``,
    403 ``not_member``, 429."""
    me, keys = caller.username, ctx.keys
    if body.group is not None:
        members, _ = await load_members(ctx, body.group, me, sending=caller)
        others = sorted(m.decode() for m in members if m.decode() != me)
        throttle = keys.typing(me, f"#{body.group}")
    else:
        assert body.to is not None
        await ctx.guard.admit(ctx.redis, me, caller.token, to=body.to)
        others = [body.to] if body.to != me else []
        throttle = keys.typing(me, body.to)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.set(throttle, b"1", px=TYPING_EVERY_MS, nx=True)
        for user in others:
            pipe.hvals(keys.session(user))
        fresh, *values = await pipe.execute()
    if fresh:
        targets = {user: sessions.nodes(v) for user, v in zip(others, values, strict=True) if v}
        await ctx.sender.live_only(sender=me, kind=MessageKind.TYPING, targets=targets, group=body.group)
    return Response(status_code=204)
