"""``/history``: a conversation's messages, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cim_route.api.groups import load_members
from cim_route.api.schemas import API_PREFIX
from cim_route.auth import Caller
from cim_route.context import Ctx
from shared.errors import ApiError
from shared.protocol import NAME_RE

router = APIRouter(prefix=API_PREFIX, tags=["history"])


MAX_TS = 2**53
"""``before`` is a time in ms; past 2^53 it is no time a message can have (nor a JSON number
every client reads exactly)."""


class HistoryPage(BaseModel):
    messages: list[dict[str, Any]]
    more: bool
    """Whether older messages may match: the page is full, or the scan stopped at
    ``CIM_HISTORY_SCAN`` entries; ask again with ``before`` the last ``ts``."""


@router.get("/history", summary="Messages of a conversation, newest first")
async def history(
    ctx: Ctx,
    caller: Caller,
    with_: Annotated[str | None, Query(alias="with", pattern=NAME_RE.pattern)] = None,
    group: Annotated[str | None, Query(pattern=NAME_RE.pattern)] = None,
    q: Annotated[str | None, Query(max_length=256)] = None,
    before: Annotated[int | None, Query(ge=0, le=MAX_TS)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> HistoryPage:
    """``with=<user>`` (the caller's private conversation with that user) or ``group=<name>``
    (members only: 403 ``not_member``); ``q``: case-insensitive substring of the body;
    ``before``: only messages with ``ts`` < before (0 to 2^53); ``limit`` up to
    ``CIM_HISTORY_LIMIT``. ``{messages, more}``: messages ``{id, kind, from, to, body, ts,
    group?}`` (``to`` is the group for a group), a group's from when the caller joined it; one
    request looks at most at ``CIM_HISTORY_SCAN`` entries (``more``: there may be older ones)."""
    if (with_ is None) == (group is None):
        raise ApiError(422, "invalid_request", "give exactly one of 'with' and 'group'")
    if limit > ctx.settings.history_limit:
        raise ApiError(422, "invalid_request", f"limit is at most {ctx.settings.history_limit}")
    if with_ is not None:
        if not await ctx.redis.exists(ctx.keys.user(with_)):
            raise ApiError(404, "unknown_user", f"no such user: {with_}")
        key, since = ctx.keys.dm_history(caller.username, with_), None
    else:
        assert group is not None
        await load_members(ctx, group, caller.username)
        key = ctx.keys.group_history(group)
        joined = await ctx.redis.hget(ctx.keys.joined(group), caller.username)
        since = int(joined) if joined is not None else None  # groups made before join times
    messages, more = await ctx.history.read(
        key, before=before, q=q, limit=limit, since=since, edits_key=ctx.keys.edits(key)
    )
    return HistoryPage(messages=messages, more=more)
