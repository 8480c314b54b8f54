"""``/users``: registration and who is online."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from cim_route.address import client_address
from cim_route.api.schemas import API_PREFIX, RESERVED_NAMES, Name, Password
from cim_route.auth import UserOrService
from cim_route.context import Ctx
from cim_route.passwords import hash_password
from shared import views
from shared.errors import ApiError
from shared.keys import bucket
from shared.message import now_ms

router = APIRouter(prefix=API_PREFIX, tags=["users"])


class NewUser(BaseModel):
    username: Name
    password: Password


@router.post("/users", status_code=201, summary="Register a user")
async def register(ctx: Ctx, user: NewUser, request: Request) -> dict[str, str]:
    """201 ``{username}``; 409 ``username_taken`` (names are unique without regard to case, and
    ``system``, ``admin``, ``root``, ``all``, ``everyone``, ``cim`` are reserved); 429
    ``rate_limited`` when the client address registers or logs in too often."""
    address = client_address(request.scope, ctx.proxies)
    folded = user.username.lower()
    b = bucket(user.username)  # the bucket of every case variant of the name
    (taken,) = await ctx.gate.enter(ctx.redis, address, then=[("HEXISTS", ctx.keys.usernames(b), folded)])
    if taken or folded in RESERVED_NAMES:
        raise ApiError(409, "username_taken", f"{user.username} is taken")
    pw_hash = await hash_password(user.password, ctx.settings.scrypt_n)
    if not await ctx.redis.hsetnx(ctx.keys.usernames(b), folded, user.username):
        raise ApiError(409, "username_taken", f"{user.username} is taken")
    key = ctx.keys.user(user.username)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.hsetnx(key, "pw", pw_hash)
        pipe.hsetnx(key, "created", now_ms())
        pipe.zadd(ctx.keys.users(b), {user.username: 0})
        created, _, _ = await pipe.execute()
    if not created:
        raise ApiError(409, "username_taken", f"{user.username} is taken")
    return {"username": user.username}


class Online(BaseModel):
    users: list[str]
    total: int


@router.get("/users/online", summary="Online users")
async def online(
    ctx: Ctx,
    caller: UserOrService,
    prefix: Annotated[str, Query(max_length=32)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Online:
    """Online usernames starting with ``prefix`` (sorted); ``total`` counts them all.

    A user's bearer token or, for operators' tools such as ``cim status``, an ``X-API-Key``."""
    users, total = await views.online_page(ctx.redis, ctx.keys, prefix, limit)
    return Online(users=users, total=total)
