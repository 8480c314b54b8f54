"""``cim bench p2p``: HTTP sends between random users, received over the users' TCP sessions.

``users`` users are registered and connected with the SDK (the route's
balancer spreads them over the nodes). ``concurrency`` workers then send, for
``duration`` seconds, from a random user to another random user through an
``httpx.AsyncClient`` each (one keep-alive connection per worker: one shared
pool throttles itself as concurrency grows, encode/httpx#3215 -- measured in
docs/BENCHMARKS.md). Each body is a unique key, so a receipt is
matched to its send: latency runs from just before the POST to the moment the
recipient's SDK reads the frame off its socket. After the load, a grace period
waits for stragglers; a message answered 202 but never received is ``lost``.

``--baseline`` runs the same load shape against ``cim_cli.bench.baseline``
(FastAPI that only publishes to NATS, one subscriber counting), so the ratio
shows what cim's own work costs. Without ``--route`` a cluster of its own is
started (``LocalCluster`` in a temporary folder, rate limit off) and stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cim_cli.ops.launcher import LocalCluster, run_async
from cim_cli.ops.services import free_port, start_nats, wait_for_port
from cim_client import Client, Message, api_url

__all__ = ["BenchResult", "bench_baseline", "bench_p2p", "run_bench"]

PASSWORD = "bench-password"
GRACE_S = 5.0
SETUP_CONCURRENCY = 8

Send = Callable[[httpx.AsyncClient, str, int, int], Awaitable[httpx.Response]]
"""(worker's HTTP client, key, sender index, recipient index) -> the HTTP answer."""


@dataclass
class BenchResult:
    """What one run measured; rates are per second of load."""

    name: str
    users: int
    concurrency: int
    duration_s: float
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    sent_per_s: float = 0.0
    delivered_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    nodes: dict[str, int] = field(default_factory=dict)
    """Users per node (cim only)."""


class _Tracker:
    """Start times of sends, receipts and their latencies, matched by body key."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.accepted: set[str] = set()
        self.received: set[str] = set()
        self.latencies: list[float] = []
        self.duplicates = 0
        self.last_receipt = 0.0
        self._outstanding: set[str] = set()
        self._sending = True
        self._complete = asyncio.Event()

    def accept(self, key: str) -> None:
        """The server answered 202 for ``key``."""
        self.accepted.add(key)
        if key not in self.received:
            self._outstanding.add(key)

    async def wait_all(self, timeout: float) -> None:
        """After the load: until every accepted message arrived, at most ``timeout`` s."""
        self._sending = False
        if not self._outstanding:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._complete.wait()

    def receipt(self, key: str) -> None:
        now = time.perf_counter()
        start = self.started.get(key)
        if start is None:
            return  # not ours (an earlier run's leftover)
        if key in self.received:
            self.duplicates += 1
            return
        self.received.add(key)
        self.latencies.append(now - start)
        self.last_receipt = now
        self._outstanding.discard(key)
        if not self._sending and not self._outstanding:
            self._complete.set()

    def missing(self) -> int:
        return len(self._outstanding)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(
    name: str, send: Send, users: int, concurrency: int, duration: float, tracker: _Tracker
) -> BenchResult:
    """Run the workers for ``duration`` s, then wait up to ``GRACE_S`` for the receipts."""
    errors: Counter[str] = Counter()
    prefix = uuid.uuid4().hex[:8]
    counter = iter(range(1 << 62))
    clients = _worker_clients(concurrency)
    began = time.perf_counter()
    deadline = began + duration

    async def worker(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            sender, recipient = random.sample(range(users), 2)
            key = f"{prefix}:{next(counter)}"
            tracker.started[key] = time.perf_counter()
            try:
                resp = await send(http, key, sender, recipient)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            if resp.status_code == 202:
                tracker.accept(key)
            else:
                errors[str(resp.status_code)] += 1

    try:
        await asyncio.gather(*(worker(http) for http in clients))
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    sending_s = time.perf_counter() - began
    await tracker.wait_all(GRACE_S)
    delivered = len(tracker.accepted & tracker.received)
    window = max(sending_s, tracker.last_receipt - began) if delivered else sending_s
    return BenchResult(
        name=name,
        users=users,
        concurrency=concurrency,
        duration_s=round(sending_s, 2),
        sent=len(tracker.accepted),
        delivered=delivered,
        lost=tracker.missing(),
        duplicates=tracker.duplicates,
        errors=dict(errors),
        sent_per_s=round(len(tracker.accepted) / sending_s, 1),
        delivered_per_s=round(delivered / window, 1),
        p50_ms=round(_percentile(tracker.latencies, 0.50) * 1000, 2),
        p99_ms=round(_percentile(tracker.latencies, 0.99) * 1000, 2),
    )


def _http(connections: int, tls: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=30.0, verify=tls or True)


def _worker_clients(count: int) -> list[httpx.AsyncClient]:
    """One single-connection client per worker, sharing one TLS context (each would load
    the CA bundle, ~50 ms apiece)."""
    tls = ssl.create_default_context()
    return [_http(1, tls) for _ in range(count)]


async def _bounded(calls: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


async def bench_p2p(
    route_url: str, users: int, concurrency: int, duration: float, transport: str = "tcp"
) -> BenchResult:
    """Measure cim at ``route_url`` (users are created with fresh names each run); the
    recipients hold their sessions over ``transport`` (``tcp`` or ``ws``)."""
    if users < 2:
        raise ValueError("--users must be at least 2")
    tracker = _Tracker()
    run = uuid.uuid4().hex[:6]
    names = [f"bench-{run}-{i}" for i in range(users)]
    async with _http(SETUP_CONCURRENCY) as http:

        def on_message(msg: Message) -> None:
            tracker.receipt(msg.body)

        clients = [
            Client(route_url, name, PASSWORD, http=http, on_message=on_message, transport=transport)
            for name in names
        ]
        try:
            await _bounded([c.register for c in clients], SETUP_CONCURRENCY)
            await _bounded([c.connect for c in clients], SETUP_CONCURRENCY)
            headers = [{"Authorization": f"Bearer {c.token}"} for c in clients]
            url = api_url(route_url) + "/messages"

            def send(
                worker: httpx.AsyncClient, key: str, sender: int, recipient: int
            ) -> Awaitable[httpx.Response]:
                return worker.post(url, json={"to": names[recipient], "body": key}, headers=headers[sender])

            result = await _load("cim", send, users, concurrency, duration, tracker)
            result.nodes = dict(Counter(c.node.id for c in clients if c.node))
            return result
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def bench_baseline(
    nats_url: str, users: int, concurrency: int, duration: float, log_dir: Path
) -> BenchResult:
    """Measure ``bench_baseline`` (its own subprocess) publishing to ``nats_url``."""
    import nats  # noqa: PLC0415 - only the baseline subscribes directly

    from cim_cli.bench.baseline import SUBJECT_PREFIX  # noqa: PLC0415

    tracker = _Tracker()
    port = free_port()
    proc = await asyncio.to_thread(_spawn_baseline, nats_url, port, log_dir / "baseline.log")
    nc = await nats.connect(nats_url)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 20.0, proc)

        async def on_msg(msg: Any) -> None:
            tracker.receipt(msg.data.decode())

        await nc.subscribe(SUBJECT_PREFIX + ">", cb=on_msg, pending_msgs_limit=1_000_000)
        await nc.flush()
        url = f"http://127.0.0.1:{port}/messages"

        def send(
            worker: httpx.AsyncClient, key: str, sender: int, recipient: int
        ) -> Awaitable[httpx.Response]:
            return worker.post(url, json={"to": f"u{recipient}", "body": key})

        return await _load("baseline", send, users, concurrency, duration, tracker)
    finally:
        await nc.drain()
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)


def _spawn_baseline(nats_url: str, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "BENCH_NATS_URL": nats_url, "BENCH_PORT": str(port)}
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cim_cli.bench.baseline"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def format_results(results: list[BenchResult]) -> list[str]:
    """A small table, plus the cim/baseline ratio when both ran."""
    header = ("", "sent/s", "delivered/s", "p50 ms", "p99 ms", "sent", "lost", "errors")
    rows = [
        (
            r.name,
            f"{r.sent_per_s:.0f}",
            f"{r.delivered_per_s:.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            str(r.sent),
            str(r.lost),
            ",".join(f"{k}:{v}" for k, v in r.errors.items()) or "0",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in (header, *rows)]
    by_name = {r.name: r for r in results}
    if "cim" in by_name and "baseline" in by_name and by_name["baseline"].sent_per_s:
        ratio = by_name["cim"].sent_per_s / by_name["baseline"].sent_per_s
        lines.append(f"cim / baseline throughput: {ratio:.2f}")
    return lines


async def _bench(args: argparse.Namespace) -> list[BenchResult]:
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="cim-bench-") as tmp:
        data = Path(tmp)
        if args.route:
            results.append(
                await bench_p2p(args.route, args.users, args.concurrency, args.duration, args.transport)
            )
        else:
            cluster = LocalCluster(
                data,
                nodes=args.nodes,
                route_port=0,
                environ={},
                extra_env={"rate_limit": "0", "log_level": "warning"},
            )
            await cluster.start()
            try:
                print(
                    f"cluster: route {cluster.route_url}, {args.nodes} node(s)", file=sys.stderr, flush=True
                )
                results.append(
                    await bench_p2p(
                        cluster.route_url, args.users, args.concurrency, args.duration, args.transport
                    )
                )
            finally:
                await cluster.stop()
        if args.baseline:
            nats_service = await asyncio.to_thread(
                start_nats, data / "baseline", 0, "127.0.0.1", data / "nats.log"
            )
            try:
                results.append(
                    await bench_baseline(nats_service.url, args.users, args.concurrency, args.duration, data)
                )
            finally:
                await nats_service.astop()
    return results


def run_bench(args: argparse.Namespace) -> int:
    """``cim bench p2p``: print the table (and JSON with ``--json``); 1 if anything was lost."""
    print(
        f"cim bench p2p: {args.users} users, concurrency {args.concurrency}, {args.duration:g} s",
        file=sys.stderr,
        flush=True,
    )
    try:
        results = run_async(_bench(args))
    except (ValueError, RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        print(f"cim bench: {exc}", file=sys.stderr)
        return 1
    for line in format_results(results):
        print(line)
    for r in results:
        if r.nodes:
            print(f"{r.name} users per node: " + ", ".join(f"{k}={v}" for k, v in sorted(r.nodes.items())))
    if args.json:
        print(json.dumps([asdict(r) for r in results]))
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return 1 if any(r.lost for r in results) else 0
