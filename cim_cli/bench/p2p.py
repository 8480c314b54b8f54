"""``cim bench p2p``: private messages from random users to random connected receivers.

``receivers`` users log in and connect over raw frames; ``concurrency``
senders (one keep-alive HTTP connection each) then send, for ``duration``
seconds, from a random user to another random user. A message answered 202
and not received within ``grace`` seconds after the load is ``lost``. Latency
runs from just before the request is written to the moment the recipient's
frame is decoded. CPU is measured over the window from the first send to the
last receipt.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from cim_cli.bench.cpu import CpuWindow
from cim_cli.bench.rawhttp import HttpConnection, HttpError
from cim_cli.bench.receipts import Receipts, percentile, stamp
from cim_cli.bench.receiver import LOGIN_PARALLEL, ReceiverPool, connect_all
from cim_cli.bench.report import Run
from cim_cli.bench.target import User

__all__ = ["P2P", "Target", "connected", "latency_figures"]

_ERROR_PAUSE_S = 0.05


class Target(Protocol):
    """What p2p needs of cim or a baseline (``cim_cli.bench.target``)."""

    name: str

    async def __aenter__(self) -> Target: ...

    async def __aexit__(self, *exc: object) -> None: ...

    @property
    def http(self) -> tuple[str, int]: ...

    def processes(self) -> dict[str, int]: ...

    async def users(self, names: list[str]) -> list[User]: ...

    def send_request(self, conn: HttpConnection, sender: User, to: str, body: str) -> bytes: ...


def latency_figures(latencies_ms: list[float]) -> dict[str, float]:
    return {f"p{q} ms": round(percentile(latencies_ms, q / 100), 2) for q in (50, 95, 99)}


class P2P:
    """Connected receivers of one target, measured at one or more concurrency levels."""

    def __init__(self, target: Target, users: list[User], pool: ReceiverPool) -> None:
        self.target = target
        self.users = users
        self.pool = pool

    async def measure(self, concurrency: int, duration: float, grace: float) -> Run:
        """One load of ``duration`` s with ``concurrency`` senders, then up to ``grace`` s of receipts."""
        receipts: Receipts = self.pool.receipts
        prefix = f"{uuid.uuid4().hex[:6]}-"
        receipts.reset(prefix)
        cpu = CpuWindow(self.target.processes())
        cpu.start()
        began = time.monotonic()
        accepted, errors = await self._load(concurrency, began + duration, prefix)
        sending_s = time.monotonic() - began
        await receipts.wait(lambda: receipts.distinct >= len(accepted), grace)
        used = cpu.stop()
        delivered = accepted & receipts.by_key.keys()
        window = max(sending_s, receipts.last_ns / 1e9 - began) if delivered else sending_s
        run = Run(self.target.name, "message")
        run.figures = {
            "sent/s": round(len(accepted) / sending_s, 1),
            "delivered/s": round(len(delivered) / window, 1),
            **latency_figures(receipts.first_latencies_ms(accepted)),
            "sent": len(accepted),
            "delivered": len(delivered),
            "lost": len(accepted) - len(delivered),
            "duplicates": receipts.duplicates(),
            "errors": sum(errors.values()),
        }
        run.set_cpu(used, len(delivered))
        run.notes = {"errors": dict(errors), "concurrency": concurrency, "receivers": len(self.users)}
        return run

    async def _load(self, concurrency: int, deadline: float, prefix: str) -> tuple[set[str], Counter[str]]:
        host, port = self.target.http
        conns = [HttpConnection(host, port) for _ in range(concurrency)]
        users, n = self.users, len(self.users)
        counter = itertools.count()
        accepted: set[str] = set()
        errors: Counter[str] = Counter()
        build = self.target.send_request

        async def sender(conn: HttpConnection) -> None:
            while time.monotonic() < deadline:
                recipient = random.randrange(n)
                key = f"{prefix}{next(counter)}"
                data = build(
                    conn, users[(recipient + random.randrange(1, n)) % n], users[recipient].name, stamp(key)
                )
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


@asynccontextmanager
async def connected(target: Target, receivers: int) -> AsyncIterator[P2P]:
    """``receivers`` fresh users of ``target``, logged in on raw frames, for the ``async with``."""
    if receivers < 2:
        raise ValueError("--receivers must be at least 2")
    run = uuid.uuid4().hex[:6]
    users = await target.users([f"b{run}-{i}" for i in range(receivers)])
    async with ReceiverPool(Receipts()) as pool:
        await connect_all(pool, [(u.token, u.host, u.port) for u in users], LOGIN_PARALLEL)
        yield P2P(target, users, pool)
