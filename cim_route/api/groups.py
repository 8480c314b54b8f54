"""``/groups``: create (the creator owns the group), change members (the owner; anyone may
leave), list the caller's, send to one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from cim_route.api.schemas import (
    API_PREFIX,
    RESERVED_NAMES,
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
from shared.protocol import NAME_RE, MessageKind

__all__ = ["load_members", "router"]

router = APIRouter(prefix=API_PREFIX, tags=["groups"])

GroupName = Annotated[str, Path(pattern=NAME_RE.pattern)]


class Group(BaseModel):
    name: str
    owner: str
    members: list[str]


class NewGroup(BaseModel):
    name: Name
    members: list[Name] = Field(default_factory=list)


def _check_size(ctx: Context, size: int) -> None:
    if size > ctx.settings.group_max:
        raise ApiError(422, "invalid_request", f"a group has at most {ctx.settings.group_max} members")


def _names(values: set[bytes]) -> list[str]:
    return sorted(v.decode() for v in values)


def _owner(fields: list[bytes | None]) -> str:
    """The owner from a group hash's ``owner`` and ``creator`` (groups made before owners
    existed are owned by their creator)."""
    owner, creator = fields
    return (owner or creator or b"").decode()


@router.post("/groups", status_code=201, summary="Create a group (its creator owns it and is a member)")
async def create(ctx: Ctx, caller: Caller, group: NewGroup) -> Group:
    """201 ``{name, owner, members}``; 409 ``group_exists`` (names are unique without regard to
    case; reserved names are taken); 404 ``unknown_user``; 422 over ``CIM_GROUP_MAX``."""
    members = sorted({*group.members, caller.username})
    _check_size(ctx, len(members))
    require_known(await unknown_users(ctx, members))
    folded = group.name.lower()
    if folded in RESERVED_NAMES or not await ctx.redis.hsetnx(ctx.keys.group_names, folded, group.name):
        raise ApiError(409, "group_exists", f"group {group.name} exists")
    if not await ctx.redis.hsetnx(ctx.keys.group(group.name), "creator", caller.username):
        raise ApiError(409, "group_exists", f"group {group.name} exists")
    now = now_ms()
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.hset(ctx.keys.group(group.name), mapping={"created": now, "owner": caller.username})
        pipe.sadd(ctx.keys.members(group.name), *members)
        pipe.hset(ctx.keys.joined(group.name), mapping=dict.fromkeys(members, now))
        for member in members:
            pipe.sadd(ctx.keys.user_groups(member), group.name)
        await pipe.execute()
    return Group(name=group.name, owner=caller.username, members=members)


async def load_members(
    ctx: Context, name: str, caller: str, *, sending: SendingCaller | None = None
) -> tuple[set[bytes], str]:
    """The members and the owner of group ``name`` if ``caller`` is a member; 404
    ``unknown_group``, 403 ``not_member``. ``sending``: the caller's token when it sends, whose
    checks (401, 429 ``rate_limited``: one token per recipient) share the round trip."""
    reads = [("HMGET", ctx.keys.group(name), "owner", "creator"), ("SMEMBERS", ctx.keys.members(name))]
    if sending is not None:
        fields, members = await ctx.guard.admit(
            ctx.redis, caller, sending.token, audience=ctx.keys.members(name), cost=1, then=reads
        )
    else:
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for command in reads:
                pipe.execute_command(*command)
            fields, members = await pipe.execute()
    if fields[1] is None:
        raise ApiError(404, "unknown_group", f"no such group: {name}")
    if caller.encode() not in members:
        raise ApiError(403, "not_member", f"{caller} is not a member of {name}")
    return members, _owner(fields)


class MemberChange(BaseModel):
    add: list[Name] = Field(default_factory=list)
    remove: list[Name] = Field(default_factory=list)
    owner: Name | None = Field(default=None, description="hand the group over to this member")


def _check_change(caller: str, owner: str, current: set[str], change: MemberChange) -> None:
    """403 ``not_owner`` unless the caller owns the group or only leaves it; 422 when the
    change would leave the group without its owner."""
    leaving = not change.add and set(change.remove) == {caller} and change.owner is None
    if caller != owner and not leaving:
        raise ApiError(403, "not_owner", f"only the owner ({owner}) changes the members of this group")
    new_owner = change.owner or owner
    after = (current | set(change.add)) - set(change.remove)
    if caller == owner and new_owner not in after:
        raise ApiError(422, "invalid_request", "the owner stays a member: hand the group over first")


@router.post("/groups/{name}/members", summary="Add and remove members, hand the group over")
async def change_members(ctx: Ctx, caller: Caller, name: GroupName, change: MemberChange) -> Group:
    """200 ``{name, owner, members}``. Only the owner adds and removes members and hands the
    group over (``owner``: a member, or one added in the same call); any member may leave
    (``remove: [self]``); anything else is 403 ``not_owner``. A member added sees the history
    from the moment it joined. 404 ``unknown_group``/``unknown_user``, 403 ``not_member``."""
    members, owner = await load_members(ctx, name, caller.username)
    current = {m.decode() for m in members}
    _check_change(caller.username, owner, current, change)
    add = sorted(set(change.add) - current)
    remove = sorted(set(change.remove) & current)
    _check_size(ctx, len((current | set(add)) - set(remove)))
    require_known(await unknown_users(ctx, add))
    async with ctx.redis.pipeline(transaction=False) as pipe:
        if add:
            pipe.sadd(ctx.keys.members(name), *add)
            pipe.hset(ctx.keys.joined(name), mapping=dict.fromkeys(add, now_ms()))
        if remove:
            pipe.srem(ctx.keys.members(name), *remove)
            pipe.hdel(ctx.keys.joined(name), *remove)
        for member in add:
            pipe.sadd(ctx.keys.user_groups(member), name)
        for member in remove:
            pipe.srem(ctx.keys.user_groups(member), name)
        if change.owner is not None and change.owner != owner:
            pipe.hset(ctx.keys.group(name), "owner", change.owner)
        pipe.smembers(ctx.keys.members(name))
        replies = await pipe.execute()
    return Group(name=name, owner=change.owner or owner, members=_names(replies[-1]))


class Groups(BaseModel):
    groups: list[Group]


@router.get("/groups", summary="The caller's groups")
async def mine(ctx: Ctx, caller: Caller) -> Groups:
    """``{groups: [{name, owner, members}]}`` sorted by name."""
    names = _names(await ctx.redis.smembers(ctx.keys.user_groups(caller.username)))
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(ctx.keys.group(name), "owner", "creator")
            pipe.smembers(ctx.keys.members(name))
        replies = await pipe.execute()
    return Groups(
        groups=[
            Group(name=n, owner=_owner(fields), members=_names(members))
            for n, fields, members in zip(names, replies[::2], replies[1::2], strict=True)
        ]
    )


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
    members, _ = await load_members(ctx, name, sender, sending=caller)
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
