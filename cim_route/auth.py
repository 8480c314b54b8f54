"""Who is calling: ``Caller`` (a user's bearer token, checked for signature, expiry and
revocation on every call) and ``ApiKey`` (server-side calls, ``X-API-Key``)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cim_route.context import Ctx
from shared import tokens
from shared.errors import ApiError, TokenError
from shared.tokens import Token

__all__ = ["ApiKey", "Caller", "UserOrService"]

_bearer = HTTPBearer(auto_error=False, description="The token from POST /login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of CIM_API_KEYS")


async def _caller(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Token:
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing bearer token")
    try:
        token = tokens.verify(ctx.settings.secret, credentials.credentials)
    except TokenError as exc:
        raise ApiError(401, "unauthorized", exc.detail) from exc
    if await ctx.redis.exists(ctx.keys.revoked(token.jti)):
        raise ApiError(401, "unauthorized", "token revoked")
    return token


def _valid_api_key(ctx: Ctx, key: str | None) -> bool:
    given = (key or "").encode()
    # compare against every key (no early exit), so timing does not tell which one is close
    matches = [hmac.compare_digest(given, k.encode()) for k in ctx.settings.api_keys]
    return bool(key) and any(matches)


async def _check_api_key(ctx: Ctx, key: Annotated[str | None, Security(_api_key)]) -> None:
    if not _valid_api_key(ctx, key):
        raise ApiError(401, "bad_api_key", "missing or unknown X-API-Key")


async def _user_or_service(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    key: Annotated[str | None, Security(_api_key)],
) -> Token | None:
    if key is not None and credentials is None:
        await _check_api_key(ctx, key)
        return None
    return await _caller(ctx, credentials)


Caller = Annotated[Token, Depends(_caller)]
"""The verified token of the calling user."""

ApiKey = Depends(_check_api_key)
"""Route dependency: a valid ``X-API-Key`` is required."""

UserOrService = Annotated[Token | None, Depends(_user_or_service)]
"""A user's bearer token, or (None) a valid ``X-API-Key`` for read-only server-side calls."""
