"""Root endpoints for operators: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from nats.errors import Error as NatsError
from prometheus_client import CONTENT_TYPE_LATEST

from cim_route.context import Context, Ctx
from shared.errors import ApiError
from shared.scripts import REDIS_FAILURES

router = APIRouter(tags=["operations"])

_PROBE_TIMEOUT_S = 2.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _problems(ctx: Context) -> list[str]:
    problems = []
    try:
        await asyncio.wait_for(ctx.redis.ping(), _PROBE_TIMEOUT_S)
    except (*REDIS_FAILURES, TimeoutError):
        problems.append("redis unreachable")
    try:
        await ctx.nats.flush(timeout=_PROBE_TIMEOUT_S)
    except (NatsError, TimeoutError):
        problems.append("nats unreachable")
    await ctx.view.loaded()
    if not len(ctx.view):
        problems.append("no node in the registry")
    return problems


@router.get("/readyz", summary="NATS, Redis and at least one node are reachable")
async def readyz(ctx: Ctx) -> dict[str, str]:
    """200, else 503 ``unavailable`` naming what is missing."""
    problems = await _problems(ctx)
    if problems:
        raise ApiError(503, "unavailable", "; ".join(problems))
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
