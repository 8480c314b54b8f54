"""Prometheus metrics of one route, in a registry of its own (several apps may share a process
in tests), and the ASGI middleware that counts requests by route template and status."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "RequestMetrics"]

_MAX_CHILDREN = 1024
_MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable (read by it at import), not a cim setting."""


class Metrics:
    """Every metric the route exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cim_route_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "cim_route_request_seconds", "HTTP request duration", ["route"], registry=r
        )
        self.messages = Counter("cim_route_messages", "Messages accepted", ["kind"], registry=r)
        self.logins = Counter("cim_route_logins", "Login attempts", ["result"], registry=r)
        self.rate_limited = Counter("cim_route_rate_limited", "Sends refused by the rate limit", registry=r)
        self.auth_refused = Counter(
            "cim_route_auth_refused",
            "Registrations and password tries refused before the password (address limit, back-off)",
            ["reason"],
            registry=r,
        )
        self.redis_errors = Counter("cim_route_redis_errors", "Redis errors answered 503", registry=r)
        self.nats_errors = Counter(
            "cim_route_nats_errors", "NATS errors and disconnects", ["event"], registry=r
        )
        self.send_seconds = Histogram(
            "cim_route_send_seconds",
            "Store + publish time of a send",
            ["kind"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.delayed_fired = Counter("cim_route_delayed_fired", "Delayed messages fired", registry=r)
        self.delayed_dropped = Counter(
            "cim_route_delayed_dropped",
            "Delayed group messages dropped: the sender left the group",
            registry=r,
        )
        self.history_dropped = Counter(
            "cim_route_history_dropped", "History entries dropped (queue full or Redis error)", registry=r
        )

        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def request_done(self, method: str, template: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its duration."""
        count, duration = self._child(
            ("request", method, template, str(status)),
            lambda: (
                self.requests.labels(method, template, str(status)),
                self.request_seconds.labels(template),
            ),
        )
        count.inc()
        duration.observe(seconds)

    def accepted(self, kind: str, seconds: float) -> None:
        """Count one accepted message and its store + publish time."""
        count, duration = self._child(
            ("accepted", kind), lambda: (self.messages.labels(kind), self.send_seconds.labels(kind))
        )
        count.inc()
        duration.observe(seconds)

    def _child(self, key: tuple[str, ...], make: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
        """The labelled metrics of ``key``, looked up once (``labels()`` costs a few µs a call)."""
        found = self._children.get(key)
        if found is None:
            found = make()
            if len(self._children) < _MAX_CHILDREN:
                self._children[key] = found
        return found

    def render(self) -> bytes:
        """The exposition text; in a multi-worker route (prometheus_client's multiprocess mode,
        ``PROMETHEUS_MULTIPROC_DIR`` set by ``cim_route.workers``) the sum over every worker."""
        if not os.environ.get(_MULTIPROC_VAR):
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


class RequestMetrics:
    """Pure ASGI middleware: one ``requests`` count and one duration per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request_done(scope["method"], template, status, time.perf_counter() - start)
