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
from shared.settings import NAME_RE

router = APIRouter(prefix=API_PREFIX, tags=["history"])


class HistoryPage(BaseModel):
    messages: list[dict[str, Any]]


@router.get("/history", summary="Messages of a conversation, newest first")
async def history(
    ctx: Ctx,
    caller: Caller,
    with_: Annotated[str | None, Query(alias="with", pattern=NAME_RE.pattern)] = None,
    group: Annotated[str | None, Query(pattern=NAME_RE.pattern)] = None,
    q: Annotated[str | None, Query(max_length=256)] = None,
    before: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> HistoryPage:
    """``with=<user>`` (the caller's private conversation with that user) or ``group=<name>``
    (members only: 403 ``not_member``); ``q``: case-insensitive substring of the body;
    ``before``: only messages with ``ts`` < before; ``limit`` up to ``CIM_HISTORY_LIMIT``.
    Messages: ``{id, kind, from, to, body, ts, group?}`` (``to`` is the group for a group)."""
    if (with_ is None) == (group is None):
        raise ApiError(422, "invalid_request", "give exactly one of 'with' and 'group'")
    if limit > ctx.settings.history_limit:
        raise ApiError(422, "invalid_request", f"limit is at most {ctx.settings.history_limit}")
    if with_ is not None:
        if not await ctx.redis.exists(ctx.keys.user(with_)):
            raise ApiError(404, "unknown_user", f"no such user: {with_}")
        key = ctx.keys.dm_history(caller.username, with_)
    else:
        assert group is not None
        await load_members(ctx, group, caller.username)
        key = ctx.keys.group_history(group)
    page = await ctx.history.read(key, before=before, q=q, limit=limit, edits_key=ctx.keys.edits(key))
    return HistoryPage(messages=page)
