"""``/groups``: create, change members, list the caller's, send to one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from cim_route.api.schemas import (
    API_PREFIX,
    Body,
    ClientMsgId,
    DelayMs,
    Name,
    check_body,
    check_delay,
    require_known,
    unknown_users,
)
from cim_route.auth import Caller, Sending, SendingCaller
from cim_route.context import Context, Ctx
from shared.errors import ApiError
from shared.message import new_message_id, now_ms
from shared.protocol import MessageKind
from shared.settings import NAME_RE

__all__ = ["load_members", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["groups"])

GroupName = Annotated[str, Path(pattern=NAME_RE.pattern)]


class Group(BaseModel):
    name: str
    members: list[str]


class NewGroup(BaseModel):
    name: Name
    members: list[Name] = Field(default_factory=list)


def _check_size(ctx: Context, size: int) -> None:
    if size > ctx.settings.group_max:
        raise ApiError(422, "invalid_request", f"a group has at most {ctx.settings.group_max} members")


def _names(values: set[bytes]) -> list[str]:
    return sorted(v.decode() for v in values)


@router.post("/groups", status_code=201, summary="Create a group (its creator is a member)")
async def create(ctx: Ctx, caller: Caller, group: NewGroup) -> Group:
    """201 ``{name, members}``; 409 ``group_exists``; 404 ``unknown_user``; 422 over ``CIM_GROUP_MAX``."""
    members = sorted({*group.members, caller.username})
    _check_size(ctx, len(members))
    require_known(await unknown_users(ctx, members))
    if not await ctx.redis.hsetnx(ctx.keys.group(group.name), "creator", caller.username):
        raise ApiError(409, "group_exists", f"group {group.name} exists")
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.hset(ctx.keys.group(group.name), "created", now_ms())
        pipe.sadd(ctx.keys.members(group.name), *members)
        for member in members:
            pipe.sadd(ctx.keys.user_groups(member), group.name)
        await pipe.execute()
    return Group(name=group.name, members=members)


async def load_members(
    ctx: Context, name: str, caller: str, *, sending: SendingCaller | None = None
) -> set[bytes]:
    """The members of group ``name`` if ``caller`` is one; 404 ``unknown_group``, 403
    ``not_member``. ``sending``: the caller's token when it sends, whose checks (401, 429
    ``rate_limited``) share the round trip."""
    reads = [("EXISTS", ctx.keys.group(name)), ("SMEMBERS", ctx.keys.members(name))]
    if sending is not None:
        exists, members = await ctx.guard.admit(ctx.redis, sending.revoked_key, caller, then=reads)
    else:
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for command in reads:
                pipe.execute_command(*command)
            exists, members = await pipe.execute()
    if not exists:
        raise ApiError(404, "unknown_group", f"no such group: {name}")
    if caller.encode() not in members:
        raise ApiError(403, "not_member", f"{caller} is not a member of {name}")
    return members


class MemberChange(BaseModel):
    add: list[Name] = Field(default_factory=list)
    remove: list[Name] = Field(default_factory=list)


@router.post("/groups/{name}/members", summary="Add and remove members (members only)")
async def change_members(ctx: Ctx, caller: Caller, name: GroupName, change: MemberChange) -> Group:
    current = {m.decode() for m in await load_members(ctx, name, caller.username)}
    add = sorted(set(change.add) - current)
    remove = sorted(set(change.remove) & current)
    _check_size(ctx, len((current | set(add)) - set(remove)))
    require_known(await unknown_users(ctx, add))
    async with ctx.redis.pipeline(transaction=False) as pipe:
        if add:
            pipe.sadd(ctx.keys.members(name), *add)
        if remove:
            pipe.srem(ctx.keys.members(name), *remove)
        for member in add:
            pipe.sadd(ctx.keys.user_groups(member), name)
        for member in remove:
            pipe.srem(ctx.keys.user_groups(member), name)
        pipe.smembers(ctx.keys.members(name))
        replies = await pipe.execute()
    return Group(name=name, members=_names(replies[-1]))


class Groups(BaseModel):
    groups: list[Group]


@router.get("/groups", summary="The caller's groups")
async def mine(ctx: Ctx, caller: Caller) -> Groups:
    names = _names(await ctx.redis.smembers(ctx.keys.user_groups(caller.username)))
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.smembers(ctx.keys.members(name))
        replies = await pipe.execute()
    return Groups(groups=[Group(name=n, members=_names(m)) for n, m in zip(names, replies, strict=True)])


class NewGroupMessage(BaseModel):
    body: Body
    client_msg_id: ClientMsgId | None = None
    delay_ms: DelayMs | None = None


class GroupSent(BaseModel):
    id: str
    recipients: int
    seq: int | None = None
    ts: int | None = None
    status: str | None = None
    due: int | None = None


@router.post(
    "/groups/{name}/messages", status_code=202, response_model_exclude_unset=True, summary="Send to a group"
)
async def send(ctx: Ctx, caller: Sending, name: GroupName, msg: NewGroupMessage) -> GroupSent:
    """202 ``{id, recipients}``: every member but the sender gets it in its inbox, with its own
    seq. With ``delay_ms`` also ``seq: null, ts, status: "scheduled", due``.
    404 ``unknown_group``, 403 ``not_member``, 413, 429."""
    check_body(ctx, msg.body)
    delay = check_delay(ctx, msg.delay_ms)
    sender = caller.username
    members = await load_members(ctx, name, sender, sending=caller)
    targets = sorted(m.decode() for m in members if m.decode() != sender)
    if delay:
        answer = await ctx.scheduler.schedule(
            kind=MessageKind.GROUP,
            sender=sender,
            body=msg.body,
            delay_ms=delay,
            target={"group": name},
            answer={"recipients": len(targets)},
            idem_scope=f"sched-group:{name}:{msg.client_msg_id}" if msg.client_msg_id else None,
        )
        return GroupSent(**answer)
    scope = f"group:{sender}:{msg.client_msg_id}" if msg.client_msg_id else None
    result = await ctx.sender.fan_out(
        sender=sender,
        targets=targets,
        body=msg.body,
        kind=MessageKind.GROUP,
        msg_id=new_message_id(),
        group=name,
        idem_scope=scope,
        device=caller.token.device,
    )
    return GroupSent(id=result.id, recipients=result.recipients)
