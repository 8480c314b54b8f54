"""v0.2 ``PATCH /messages/{id}`` (edit) and ``DELETE /messages/{id}`` (recall).

A send leaves a reference to its message (``keys.message_ref``: kind, sender, addressee or
group, and when), written in the send's own Redis call. An edit or recall by the sender, within
``CIM_EDIT_WINDOW_S`` of the send, is recorded in the conversation's edits hash (what
``GET /history`` applies: the new text with ``edited_ts``, or the message left out) and stored
as an ``edit`` / ``recall`` message (``ref`` = the message's id) for every recipient -- the
addressee, or the group's members now -- and as a carbon for the sender's devices, so an
offline recipient gets it at its next login.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgpack
from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from cim_route.api.schemas import API_PREFIX, Body, check_body
from cim_route.auth import Sending, SendingCaller
from cim_route.context import Context, Ctx
from shared import inbox
from shared.errors import ApiError
from shared.message import new_message_id, now_ms
from shared.protocol import MessageKind

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["messages"])

MessageId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class Edit(BaseModel):
    body: Body


@router.patch("/messages/{msg_id}", status_code=204, summary="Edit a message the caller sent")
async def edit(ctx: Ctx, caller: Sending, msg_id: MessageId, change: Edit) -> Response:
    """204; every recipient and the sender's devices get an ``edit``. 404 ``unknown_message``,
    403 ``not_sender``, 409 ``too_late`` (past ``CIM_EDIT_WINDOW_S``), 413, 429."""
    check_body(ctx, change.body)
    await _change(ctx, caller, msg_id, MessageKind.EDIT, change.body)
    return Response(status_code=204)


@router.delete("/messages/{msg_id}", status_code=204, summary="Recall a message the caller sent")
async def recall(ctx: Ctx, caller: Sending, msg_id: MessageId) -> Response:
    """204; every recipient and the sender's devices get a ``recall``; history leaves it out.
    404 ``unknown_message``, 403 ``not_sender``, 409 ``too_late``, 429."""
    await _change(ctx, caller, msg_id, MessageKind.RECALL, "")
    return Response(status_code=204)


async def _change(ctx: Context, caller: SendingCaller, msg_id: str, kind: MessageKind, body: str) -> None:
    """Check the caller may change ``msg_id``, record the change, tell everyone concerned."""
    sender = caller.username
    ref = await _own_ref(ctx, caller, msg_id)
    history, targets, addressee = await _audience(ctx, sender, ref)
    edits = ctx.keys.edits(history)
    change = {"body": body, "edited_ts": now_ms()} if kind is MessageKind.EDIT else {"recalled": True}
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.hset(edits, msg_id, inbox.pack(change))
        pipe.pexpire(edits, ctx.settings.retention_s * 1000)
        if kind is MessageKind.RECALL:  # gone: a later edit or recall is 404
            pipe.delete(ctx.keys.message_ref(msg_id))
        await pipe.execute()
    await ctx.sender.fan_out(
        sender=sender,
        targets=targets,
        body=body,
        kind=kind,
        msg_id=new_message_id(),
        group=ref.get("group"),
        extra={"ref": msg_id},
        carbon_to=addressee,
        device=caller.token.device,
    )


async def _own_ref(ctx: Context, caller: SendingCaller, msg_id: str) -> dict[str, Any]:
    """The reference of ``msg_id`` if the caller sent it within the window (and may send now:
    401, 429); else 404 ``unknown_message``, 403 ``not_sender``, 409 ``too_late``."""
    ref_key = ctx.keys.message_ref(msg_id)
    (raw,) = await ctx.guard.admit(ctx.redis, caller.username, caller.token, then=[("GET", ref_key)])
    if raw is None:
        raise ApiError(404, "unknown_message", f"no such message: {msg_id}")
    ref: dict[str, Any] = msgpack.unpackb(raw, raw=False)
    if ref["from"] != caller.username:
        raise ApiError(403, "not_sender", "only its sender may change a message")
    if now_ms() - ref["ts"] > ctx.settings.edit_window_s * 1000:
        raise ApiError(409, "too_late", f"messages can be changed for {ctx.settings.edit_window_s} s")
    return ref


async def _audience(ctx: Context, sender: str, ref: dict[str, Any]) -> tuple[str, list[str], str]:
    """The conversation's history key, who gets the change (the addressee, or the group's
    members now, but the sender) and the carbon's addressee."""
    keys = ctx.keys
    group = ref.get("group")
    if group is not None:
        members = {m.decode() for m in await ctx.redis.smembers(keys.members(group))}
        return keys.group_history(group), sorted(members - {sender}), group
    to = ref["to"]
    return keys.dm_history(sender, to), [to] if to != sender else [], to
