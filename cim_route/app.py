"""``create_app(settings)``: the route's FastAPI application.

The lifespan opens Redis and NATS, binds the node registry and runs three
background tasks -- the node view (which sweeps the sessions of a node that
leaves), the history writer and the delayed-message scheduler -- and cancels
and awaits them on shutdown. One set of exception handlers renders every error
as ``{"error": code, "detail": text}``; Redis and NATS connection failures
become 503 ``unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Coroutine
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from cim_route.address import networks
from cim_route.api import API_ROUTERS, ROOT_ROUTERS
from cim_route.api.schemas import ERROR_RESPONSES
from cim_route.balancer import make_balancer
from cim_route.batcher import Batcher
from cim_route.context import Context
from cim_route.gate import AuthGate
from cim_route.guard import Guard
from cim_route.history import History
from cim_route.lean import LeanSend
from cim_route.limits import BodyLimit
from cim_route.metrics import Metrics, RequestMetrics
from cim_route.nodes import NodeView
from cim_route.scheduler import Scheduler
from cim_route.send import Sender
from shared import links, resp, sessions
from shared.durability import Unconfirmed, Wait
from shared.errors import ApiError
from shared.keys import Keys
from shared.registry import NodeRegistry
from shared.registry_nats import DEFAULT_BUCKET, NatsKvRegistry
from shared.scripts import AnyRedis, Scripts, is_cluster
from shared.settings import RouteSettings, redacted

__all__ = ["create_app"]

log = logging.getLogger(__name__)

REDIS_POOL = 64
"""Redis connections of one route process; more concurrent calls wait for one."""

_SHUTDOWN_FLUSH_S = 2.0
_CANCEL_RETRY_S = 0.5
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    # A Redis Cluster between a master's loss and its replica's promotion, or moving a slot:
    # CLUSTERDOWN, "TTL exhausted" (ClusterError), a slot not covered (not a RedisError).
    redis_errors.ClusterError,
    redis_errors.TryAgainError,
    redis_errors.RedisClusterException,
    NatsError,
    Unconfirmed,
)
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def create_app(settings: RouteSettings, registry: NodeRegistry | None = None) -> FastAPI:
    """The route. ``registry``: a node registry to use instead of the NATS KV bucket (tests)."""
    metrics = Metrics()
    app = _RouteApp(
        metrics,
        settings.max_request,
        title="cim route",
        version=_version(),
        description="Instant messaging and push: users, messages, groups, history, push, nodes.",
        lifespan=partial(_lifespan, settings=settings, registry=registry, metrics=metrics),
    )
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    for exc_type in _UNAVAILABLE:
        app.add_exception_handler(exc_type, partial(_unavailable, metrics=metrics))
    for router in API_ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)
    for router in ROOT_ROUTERS:
        app.include_router(router)
    return app


class _RouteApp(FastAPI):
    """FastAPI with the request metrics outermost, then the body limit (``CIM_MAX_REQUEST``:
    every call, the lean one too) and the lean ``POST /messages`` ahead of FastAPI's own
    middleware and routing (``cim_route.lean``)."""

    def __init__(self, metrics: Metrics, max_request: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics
        self._max_request = max_request

    def build_middleware_stack(self) -> ASGIApp:
        lean = LeanSend(super().build_middleware_stack(), self)
        return RequestMetrics(BodyLimit(lean, self._max_request), self._metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hot call skips FastAPI's per-request telemetry lookups; the stack is built by the
        # first request (``Starlette.__call__``), which takes the ordinary way.
        if self.middleware_stack is not None and LeanSend.handles(scope):
            scope["app"] = self
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _version() -> str:
    try:
        return importlib.metadata.version("cim")
    except importlib.metadata.PackageNotFoundError:
        return "0"


# ----- lifespan ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _lifespan(
    app: FastAPI, *, settings: RouteSettings, registry: NodeRegistry | None, metrics: Metrics
) -> AsyncIterator[None]:
    # redis-py refuses a call past its pool size (100) instead of waiting: a login storm got
    # 503s. A blocking pool makes the excess wait (up to 5 s) for a free connection.
    redis = _redis(settings)
    resp.fast_packing(redis)
    try:
        nats = await _connect_nats(settings, metrics)
        try:
            if registry is None:
                registry = await NatsKvRegistry.open(
                    nats.jetstream(), DEFAULT_BUCKET, settings.registry_refresh_s, settings.nats_kv_replicas
                )
            context = _build_context(settings, redis, nats, registry, metrics)
            app.state.context = context
            tasks = {
                "node view": context.view.run(),
                "history writer": context.history.run(),
                "scheduler": context.scheduler.run(),
            }
            async with _running(tasks):
                log.info("route ready: balancer %s, nats %s", settings.balancer, redacted(settings.nats_url))
                try:
                    yield
                finally:
                    await context.batcher.aclose()
                with contextlib.suppress(TimeoutError):
                    await context.history.flush(_SHUTDOWN_FLUSH_S)
        finally:
            await nats.close()
    finally:
        await redis.aclose()


def _redis(settings: RouteSettings) -> AnyRedis:
    """One Redis through a blocking pool, or a Redis Cluster (``redis+cluster://``)."""
    timeouts = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
    if links.is_cluster_url(settings.redis_url):
        return links.redis_client(settings.redis_url, settings.tls_ca, max_connections=REDIS_POOL, **timeouts)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=REDIS_POOL,
        timeout=5.0,
        **timeouts,
        **links.redis_options(settings.redis_url, settings.tls_ca),
    )
    return Redis.from_pool(pool)


def _build_context(
    settings: RouteSettings, redis: AnyRedis, nats: Nats, registry: NodeRegistry, metrics: Metrics
) -> Context:
    keys = Keys(settings.redis_prefix)
    scripts = Scripts.register(redis)
    history = History(
        redis, settings.retention_s, metrics, scan=settings.history_scan, keep=settings.history_max
    )
    guard = Guard(scripts, keys, settings.rate_limit, metrics, cluster=is_cluster(redis))
    wait = Wait(settings.redis_wait, settings.redis_wait_ms) if settings.redis_wait else None
    batcher = Batcher(redis, scripts, wait=wait)
    sender = Sender(redis, scripts, keys, nats, settings, history, metrics, guard, batcher)

    async def sweep(node_id: str) -> None:
        swept = await sessions.sweep_node(redis, scripts, keys, node_id)
        log.info("swept %d sessions of node %s", swept, node_id)

    return Context(
        settings=settings,
        keys=keys,
        redis=redis,
        scripts=scripts,
        nats=nats,
        view=NodeView(registry, sweep, settings.node_hosts),
        balancer=make_balancer(settings.balancer),
        metrics=metrics,
        history=history,
        guard=guard,
        batcher=batcher,
        sender=sender,
        scheduler=Scheduler(
            redis, scripts, keys, sender, metrics, settings.scheduler_poll_ms / 1000, settings.idempotency_s
        ),
        gate=AuthGate(scripts, keys, settings, metrics),
        proxies=networks(settings.trusted_proxies),
    )


async def _connect_nats(settings: RouteSettings, metrics: Metrics) -> Nats:
    """Connect, reconnecting forever once connected; give up at start after ``startup_timeout_s``."""

    async def on_error(exc: Exception) -> None:
        metrics.nats_errors.labels("error").inc()
        log.warning("nats: %r", exc)

    async def on_disconnect() -> None:
        metrics.nats_errors.labels("disconnect").inc()
        log.warning("nats: disconnected")

    async def on_reconnect() -> None:
        log.info("nats: reconnected")

    nats = Nats()
    try:
        await asyncio.wait_for(
            nats.connect(
                name="cim-route",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                **links.nats_options(settings.nats_url, settings.nats_creds, settings.tls_ca),
            ),
            settings.startup_timeout_s,
        )
    except BaseException:
        await nats.close()
        raise
    return nats


@contextlib.asynccontextmanager
async def _running(coros: dict[str, Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run each coroutine as a task for the duration of the block; cancel and await them after."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in coros.items()]
    for task in tasks:
        task.add_done_callback(_report_exit)
    try:
        yield
    finally:
        pending = set(tasks)
        while pending:
            # Cancel again until they are done: a cancel that lands while a library converts a
            # timeout (redis-py under asyncio.timeout) can be swallowed once.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=_CANCEL_RETRY_S)


def _report_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


# ----- errors --------------------------------------------------------------------------------


def _envelope(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _envelope(exc.status, exc.code, exc.detail, getattr(exc, "headers", None))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()[:5]
    ]
    return _envelope(422, "invalid_request", "; ".join(problems) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return _envelope(exc.status_code, code, detail, exc.headers)


async def _unavailable(request: Request, exc: Exception, *, metrics: Metrics) -> JSONResponse:
    if isinstance(exc, NatsError):
        metrics.nats_errors.labels("request").inc()
    else:
        metrics.redis_errors.inc()
    log.warning("%s %s: backend unavailable: %r", request.method, request.url.path, exc)
    return _envelope(503, "unavailable", "a backend (Redis or NATS) is unavailable; retry later")
