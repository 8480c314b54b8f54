"""``cim bench p2p``: private messages from random users to random connected receivers.

``receivers`` users log in and connect over raw frames; ``concurrency``
senders (one keep-alive HTTP connection each) then send, for ``duration``
seconds, from a random user to another random user. A message answered 202
and not received within ``grace`` seconds after the load is ``lost``. Latency
runs from just before the request is written to the moment the recipient's
frame is decoded. CPU is measured over the window from the first send to the
last receipt, after a warm-up in which every user sent once. ``load_share``
is one process's part of the load (``--procs`` runs one per worker process,
``cim_cli.bench.workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from cim_cli.bench.cpu import CpuWindow
from cim_cli.bench.rawhttp import HttpConnection, HttpError
from cim_cli.bench.receipts import Receipts, percentile, stamp
from cim_cli.bench.receiver import ReceiverPool, connect_all
from cim_cli.bench.report import Run
from cim_cli.bench.target import SendPlan, User

__all__ = [
    "P2P",
    "Share",
    "Target",
    "connected",
    "latency_figures",
    "load_share",
    "make_users",
    "to_run",
    "warm_up",
]

_ERROR_PAUSE_S = 0.05
WARM_UP_CONNECTIONS = 16


class Target(Protocol):
    """What p2p needs of cim or a baseline (``cim_cli.bench.target``)."""

    name: str

    async def __aenter__(self) -> Target: ...

    async def __aexit__(self, *exc: object) -> None: ...

    @property
    def plan(self) -> SendPlan: ...

    def processes(self) -> dict[str, int]: ...

    async def users(self, names: list[str]) -> list[User]: ...


def latency_figures(latencies_ms: list[float]) -> dict[str, float]:
    return {f"p{q} ms": round(percentile(latencies_ms, q / 100), 2) for q in (50, 95, 99)}


@dataclass
class Share:
    """What one process's senders and receivers measured (picklable, merged by ``to_run``)."""

    accepted: int = 0
    delivered: int = 0
    duplicates: int = 0
    sending_s: float = 0.0
    window_s: float = 0.0
    """From the first send to the last receipt (at least ``sending_s``)."""
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


async def _send(
    plan: SendPlan, users: list[User], concurrency: int, deadline: float, prefix: str
) -> tuple[set[str], Counter[str]]:
    """``concurrency`` senders until ``deadline``: the keys answered 202, and the failures."""
    conns = [HttpConnection(plan.host, plan.port, plan.tls) for _ in range(concurrency)]
    n = len(users)
    counter = itertools.count()
    accepted: set[str] = set()
    errors: Counter[str] = Counter()

    async def sender(conn: HttpConnection) -> None:
        while time.monotonic() < deadline:
            to = random.randrange(n)
            key = f"{prefix}{next(counter)}"
            data = plan.request(conn, users[(to + random.randrange(1, n)) % n], users[to].name, stamp(key))
            try:
                status, _ = await conn.send(data)
            except HttpError:
                errors["connection"] += 1
                await asyncio.sleep(_ERROR_PAUSE_S)  # the server is gone or refusing: don't spin
                continue
            if status == 202:
                accepted.add(key)
            else:
                errors[str(status)] += 1

    try:
        await asyncio.gather(*(sender(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    return accepted, errors


async def warm_up(plan: SendPlan, users: list[User]) -> None:
    """Each user sends one message before anything is measured (a route caches each token it
    verified: the measured window should see the steady state, not 1,000 first sends)."""
    pending = list(range(len(users)))
    conns = [HttpConnection(plan.host, plan.port, plan.tls) for _ in range(WARM_UP_CONNECTIONS)]

    async def sender(conn: HttpConnection) -> None:
        while pending:
            i = pending.pop()
            data = plan.request(conn, users[i], users[(i + 1) % len(users)].name, stamp("warm-up"))
            with contextlib.suppress(HttpError):
                await conn.send(data)

    try:
        await asyncio.gather(*(sender(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()


async def load_share(
    plan: SendPlan, users: list[User], receipts: Receipts, concurrency: int, duration: float, grace: float
) -> Share:
    """Send among ``users`` (whose receivers feed ``receipts``), then wait up to ``grace`` s."""
    prefix = f"{uuid.uuid4().hex[:6]}-"
    receipts.reset(prefix)
    began = time.monotonic()
    accepted, errors = await _send(plan, users, concurrency, began + duration, prefix)
    sending_s = time.monotonic() - began
    await receipts.wait(lambda: receipts.distinct >= len(accepted), grace)
    delivered = accepted & receipts.by_key.keys()
    window = max(sending_s, receipts.last_ns / 1e9 - began) if delivered else sending_s
    return Share(
        accepted=len(accepted),
        delivered=len(delivered),
        duplicates=receipts.duplicates(),
        sending_s=sending_s,
        window_s=window,
        latencies_ms=receipts.first_latencies_ms(accepted),
        errors=dict(errors),
    )


def to_run(target: str, shares: list[Share], used_s: dict[str, float], notes: dict[str, object]) -> Run:
    """One run's figures from the shares of every process (one without ``--procs``)."""
    accepted = sum(s.accepted for s in shares)
    delivered = sum(s.delivered for s in shares)
    errors: Counter[str] = Counter()
    for share in shares:
        errors.update(share.errors)
    sending_s = max(s.sending_s for s in shares)
    run = Run(target, "message")
    run.figures = {
        "sent/s": round(accepted / sending_s, 1),
        "delivered/s": round(delivered / max(s.window_s for s in shares), 1),
        **latency_figures([lat for s in shares for lat in s.latencies_ms]),
        "sent": accepted,
        "delivered": delivered,
        "lost": accepted - delivered,
        "duplicates": sum(s.duplicates for s in shares),
        "errors": sum(errors.values()),
    }
    run.set_cpu(used_s, delivered)
    run.notes = {**notes, "errors": dict(errors)}
    return run


class P2P:
    """Connected receivers of one target in this process, measured at one or more concurrency levels."""

    def __init__(self, target: Target, users: list[User], pool: ReceiverPool) -> None:
        self.target = target
        self.users = users
        self.pool = pool

    async def measure(self, concurrency: int, duration: float, grace: float) -> Run:
        """One load of ``duration`` s with ``concurrency`` senders, then up to ``grace`` s of receipts."""
        cpu = CpuWindow(self.target.processes())
        cpu.start()
        share = await load_share(
            self.target.plan, self.users, self.pool.receipts, concurrency, duration, grace
        )
        used = cpu.stop()
        notes = {"concurrency": concurrency, "receivers": len(self.users), "procs": 1}
        return to_run(self.target.name, [share], used, notes)


async def make_users(target: Target, receivers: int) -> list[User]:
    """``receivers`` fresh users of ``target``."""
    if receivers < 2:
        raise ValueError("--receivers must be at least 2")
    run = uuid.uuid4().hex[:6]
    return await target.users([f"b{run}-{i}" for i in range(receivers)])


@asynccontextmanager
async def connected(target: Target, receivers: int) -> AsyncIterator[P2P]:
    """``receivers`` fresh users of ``target``, logged in on raw frames, for the ``async with``."""
    users = await make_users(target, receivers)
    async with ReceiverPool(Receipts()) as pool:
        await connect_all(pool, users)
        await warm_up(target.plan, users)
        yield P2P(target, users, pool)
