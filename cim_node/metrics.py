"""Prometheus metrics of one node, on a registry object of its own (not the global one).

Names carry the ``cim_node_`` namespace: ``cim_node_connections``,
``cim_node_logins_total{result}``, ``cim_node_frames_in_total{type}``,
``cim_node_messages_out_total{kind}``, ``cim_node_delivery_latency_seconds``,
``cim_node_kicks_total{reason}``, ``cim_node_slow_consumers_total``,
``cim_node_nats_errors_total``, ``cim_node_redis_errors_total``.
"""

from __future__ import annotations

import asyncio
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["NodeMetrics"]

_NS = "cim_node"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class NodeMetrics:
    """The node's collectors, and the HTTP endpoint that serves them (``serve`` / ``close``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge("connections", "Open client connections", namespace=_NS, registry=r)
        self.logins = Counter("logins", "Login attempts by result", ["result"], namespace=_NS, registry=r)
        self.frames_in = Counter("frames_in", "Client frames received", ["type"], namespace=_NS, registry=r)
        self.messages_out = Counter("messages_out", "msg frames written", ["kind"], namespace=_NS, registry=r)
        self.delivery_latency = Histogram(
            "delivery_latency_seconds",
            "Accept time of a live message to its write on the socket",
            namespace=_NS,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.kicks = Counter("kicks", "Kicks sent by reason", ["reason"], namespace=_NS, registry=r)
        self.slow_consumers = Counter(
            "slow_consumers", "Connections closed for a full write buffer", namespace=_NS, registry=r
        )
        self.nats_errors = Counter("nats_errors", "NATS errors", namespace=_NS, registry=r)
        self.redis_errors = Counter("redis_errors", "Redis errors", namespace=_NS, registry=r)
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        # labels() hashes its arguments on every call; the hot paths use these cached children.
        self._frames_in: dict[str, Counter] = {}
        self._messages_out: dict[str, Counter] = {}

    def frame_in(self, kind: str) -> None:
        child = self._frames_in.get(kind)
        if child is None:
            child = self._frames_in[kind] = self.frames_in.labels(kind)
        child.inc()

    def message_out(self, kind: str) -> None:
        child = self._messages_out.get(kind)
        if child is None:
            child = self._messages_out[kind] = self.messages_out.labels(kind)
        child.inc()

    def serve(self, host: str, port: int) -> int:
        """Start prometheus_client's HTTP server (a daemon thread); return the port it listens on."""
        self._http = start_http_server(port, addr=host, registry=self.registry)
        return self._http[0].server_port

    async def close(self) -> None:
        """Stop the HTTP server, if any (``shutdown`` blocks for up to its poll interval)."""
        if self._http is None:
            return
        server, thread = self._http
        self._http = None
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        await asyncio.to_thread(thread.join, 5.0)
