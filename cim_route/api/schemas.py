"""Field types and checks the routers share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from cim_route.context import Context
from shared import views
from shared.errors import ApiError
from shared.protocol import NAME_RE

__all__ = [
    "API_PREFIX",
    "ERROR_RESPONSES",
    "ErrorBody",
    "Body",
    "ClientMsgId",
    "DelayMs",
    "Name",
    "Password",
    "RESERVED_NAMES",
    "check_body",
    "check_delay",
    "require_known",
    "unknown_users",
]

API_PREFIX = "/api/v1"


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": code, "detail": text}``."""

    error: str
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "unauthorized / bad_api_key"},
    422: {"model": ErrorBody, "description": "invalid_request"},
    503: {"model": ErrorBody, "description": "unavailable"},
}
"""Documented on every API call (OpenAPI); the call's own errors are in its description."""

Name = Annotated[str, StringConstraints(pattern=NAME_RE.pattern)]
"""A username or group name: 1-32 of A-Z a-z 0-9 _ . -"""

Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]

RESERVED_NAMES = frozenset({"system", "admin", "root", "all", "everyone", "cim"})
"""Names nobody may take, as a user or a group, in any case (``system`` sends pushes)."""

Body = Annotated[str, StringConstraints(min_length=1)]
"""A message body; its UTF-8 size is checked against ``CIM_MAX_BODY`` (413)."""

ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""Makes a send idempotent (per sender) for ``CIM_IDEMPOTENCY_S``."""

DelayMs = Annotated[int, Field(ge=0, description="deliver this many milliseconds from now")]


def check_body(ctx: Context, body: str) -> None:
    """413 ``too_large`` for a body over ``CIM_MAX_BODY`` bytes of UTF-8."""
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate from a JSON escape
        raise ApiError(422, "invalid_request", "body is not valid UTF-8") from exc
    if size > ctx.settings.max_body:
        raise ApiError(413, "too_large", f"body is {size} bytes, the limit is {ctx.settings.max_body}")


def check_delay(ctx: Context, delay_ms: int | None) -> int:
    """The delay in ms (0 = now); 422 when it passes the retention period."""
    delay = delay_ms or 0
    if delay > ctx.settings.retention_s * 1000:
        raise ApiError(422, "invalid_request", "delay_ms may not exceed the retention period")
    return delay


async def unknown_users(ctx: Context, names: list[str]) -> list[str]:
    """The ones of ``names`` that are not registered."""
    return await views.unknown_users(ctx.redis, ctx.keys, names)


def require_known(unknown: list[str]) -> None:
    """404 ``unknown_user`` naming the first few unknown usernames."""
    if unknown:
        raise ApiError(404, "unknown_user", "no such user: " + ", ".join(unknown[:10]))
