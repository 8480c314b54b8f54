"""Prometheus metrics of one node, on a registry object of its own (not the global one).

Names carry the ``cim_node_`` namespace: ``cim_node_connections``,
``cim_node_logins_total{result}``, ``cim_node_frames_in_total{type}``,
``cim_node_messages_out_total{kind}``, ``cim_node_delivery_latency_seconds``,
``cim_node_kicks_total{reason}``, ``cim_node_slow_consumers_total``,
``cim_node_nats_errors_total``, ``cim_node_redis_errors_total``.

The three observed per frame (frames in, messages out, delivery latency) are
plain counts in memory, turned into metric families only when scraped: a
prometheus_client child takes a lock and, for a histogram, walks its buckets in
Python on every observation.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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
        self.frames_in = _Tally(f"{_NS}_frames_in", "Client frames received", "type")
        self.messages_out = _Tally(f"{_NS}_messages_out", "msg frames written", "kind")
        self.delivery_latency = _Latency(
            f"{_NS}_delivery_latency_seconds", "Accept time of a live message to its write on the socket"
        )
        for collector in (self.frames_in, self.messages_out, self.delivery_latency):
            r.register(collector)
        self.kicks = Counter("kicks", "Kicks sent by reason", ["reason"], namespace=_NS, registry=r)
        self.slow_consumers = Counter(
            "slow_consumers", "Connections closed for a full write buffer", namespace=_NS, registry=r
        )
        self.nats_errors = Counter("nats_errors", "NATS errors", namespace=_NS, registry=r)
        self.redis_errors = Counter("redis_errors", "Redis errors", namespace=_NS, registry=r)
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        self.frame_in = self.frames_in.inc
        self.message_out = self.messages_out.inc

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


class _Tally(Collector):
    """A counter by one label, kept as plain ints (the event loop is its only writer)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self._name = name
        self._doc = documentation
        self._label = label
        self._counts: dict[str, int] = {}

    def inc(self, value: str) -> None:
        """Count one ``value`` (a ``StrEnum`` member counts as its value: same hash, equal)."""
        counts = self._counts
        counts[value] = counts.get(value, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=[self._label])
        for value, count in dict(self._counts).items():  # a copy: the scrape runs in a thread
            family.add_metric([str(value)], count)  # a StrEnum's str is its value
        yield family


class _Latency(Collector):
    """A histogram of seconds over ``_LATENCY_BUCKETS``: one bisect per observation."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name = name
        self._doc = documentation
        self._counts = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self._sum += seconds

    def collect(self) -> Iterator[Metric]:
        counts, total = list(self._counts), self._sum
        buckets, running = [], 0
        for bound, count in zip([*map(str, _LATENCY_BUCKETS), "+Inf"], counts, strict=True):
            running += count
            buckets.append((bound, running))
        yield HistogramMetricFamily(self._name, self._doc, buckets=buckets, sum_value=total)
