"""Who is calling: ``Caller`` (a user's bearer token, checked for signature, expiry and
revocation -- its own and its user's token epoch, in one round trip -- on every call),
``Sending`` (the same checks, with revocation left to the send path's Redis call:
``cim_route.guard``) and ``ApiKey`` (server-side calls, ``X-API-Key``)."""

from __future__ import annotations

import functools
import hmac
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cim_route.context import Context, Ctx
from cim_route.guard import revoked
from shared import tokens
from shared.errors import ApiError, TokenError
from shared.tokens import Token

__all__ = ["ApiKey", "Caller", "Sending", "SendingCaller", "UserOrService", "verified"]

_bearer = HTTPBearer(auto_error=False, description="The token from POST /login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of CIM_API_KEYS")
_VERIFIED_CACHE = 4096
"""Distinct tokens whose signature check is remembered (a client sends the same token on
every call, and the HMAC + JSON decoding is a good part of a send's CPU)."""


@functools.lru_cache(maxsize=_VERIFIED_CACHE)
def _verify_signature(secret: str, token: str) -> Token:
    # Only successes are cached (lru_cache keeps no exceptions); expiry is checked on every use.
    return tokens.verify(secret, token)


def _verified(ctx: Context, credentials: HTTPAuthorizationCredentials | None) -> Token:
    """The token's claims once its signature and expiry check out; 401 ``unauthorized`` if not."""
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing bearer token")
    return verified(ctx, credentials.credentials)


def verified(ctx: Context, bearer: str) -> Token:
    """The claims of the bearer token ``bearer``; 401 ``unauthorized`` if it is bad or expired."""
    try:
        token = _verify_signature(ctx.settings.secret, bearer)
    except TokenError as exc:
        raise ApiError(401, "unauthorized", exc.detail) from exc
    # The same rule as PyJWT's ``exp`` check (expired when exp <= now), for cached tokens.
    if token.expires_at <= time.time() * 1000:
        raise ApiError(401, "unauthorized", "token expired")
    return token


async def _caller(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> Token:
    token = _verified(ctx, credentials)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        pipe.exists(ctx.keys.revoked(token.username, token.jti))
        pipe.hmget(ctx.keys.token_epoch(token.username), *tokens.EPOCH_FIELDS)
        is_revoked, (at, keep) = await pipe.execute()
    if is_revoked or tokens.before_epoch(token, at, keep):
        raise revoked()
    return token


@dataclass(frozen=True, slots=True)
class SendingCaller:
    """The caller of a send: its token's signature and expiry check out; whether it is revoked
    is checked by the send's own Redis call (``cim_route.guard``)."""

    token: Token

    @property
    def username(self) -> str:
        return self.token.username


async def _sending(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> SendingCaller:
    return SendingCaller(_verified(ctx, credentials))


def _valid_api_key(ctx: Context, key: str | None) -> bool:
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

Sending = Annotated[SendingCaller, Depends(_sending)]
"""The calling user's token for the send calls, whose revocation check goes in their first
Redis call (``cim_route.guard``)."""

ApiKey = Depends(_check_api_key)
"""Route dependency: a valid ``X-API-Key`` is required."""

UserOrService = Annotated[Token | None, Depends(_user_or_service)]
"""A user's bearer token, or (None) a valid ``X-API-Key`` for read-only server-side calls."""
