"""``cim bench reconnect``: the clients of a node that is SIGKILLed log in elsewhere and catch up.

``clients`` users log in on raw frames, all on the first node (a token is
valid on every node). That node is then SIGKILLed; at once one more user sends
one message to each of them (64 connections) while they are away: the clients
start their way back once every message is accepted (``--overlap``: at once,
racing the sends -- which shows a handover race of cim today, see
docs/BENCHMARKS.md). Each client, on losing its connection, asks the route for a node (``POST
/api/v1/connect`` with its token: the registry may still list the dead node
for a few seconds) with exponential backoff and full jitter, and logs in there.
A client is **done** when it is logged in on another node and holds its
message (replayed from its inbox, or live). Figures run from the kill: time
until all are logged in again, until all are done (p50/p99/max), and ``lost``:
messages answered 202 but not received by ``timeout`` ("all ..." figures are
None when not everyone got there by then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter

from cim_cli.bench.cpu import CpuWindow
from cim_cli.bench.rawhttp import HttpConnection, HttpError, HttpPool
from cim_cli.bench.receipts import Receipts, percentile, stamp
from cim_cli.bench.receiver import FrameReceiver, ReceiverPool, connect_all, open_receiver
from cim_cli.bench.report import Report, Run
from cim_cli.bench.target import API, CimTarget, User

__all__ = ["run"]

SEND_PARALLEL = 64
CONNECT_PARALLEL = 64
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0


class _Storm:
    """The clients' reconnections: one task per client that lost its node, owned here."""

    def __init__(self, http: HttpPool, receipts: Receipts) -> None:
        self.http = http
        self.receipts = receipts
        self.go = asyncio.Event()
        """Set when the clients may start back (the messages were sent, or ``--overlap``)."""
        self.relogged: dict[FrameReceiver, float] = {}
        self.tasks: dict[FrameReceiver, asyncio.Task[None]] = {}

    def lost(self, receiver: FrameReceiver) -> None:
        """``on_lost`` of every receiver: start its way back, once."""
        if receiver not in self.relogged and receiver not in self.tasks:
            self.tasks[receiver] = asyncio.create_task(self._rejoin(receiver))

    async def _rejoin(self, receiver: FrameReceiver) -> None:
        await self.go.wait()
        attempt = 0
        while True:
            await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
            attempt += 1
            try:
                status, answer = await self.http.call(
                    "POST", API + "/connect", headers={"Authorization": f"Bearer {receiver.token}"}
                )
                if status != 200:
                    continue
                node = answer["node"]
                receiver.rearm()
                await open_receiver(receiver, node["host"], node["port"])
            except (HttpError, OSError, TimeoutError):
                continue
            self.relogged[receiver] = time.monotonic()
            self.receipts.check()
            return

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _send_each(
    target: CimTarget, sender: User, users: list[User], tag: str
) -> tuple[set[str], Counter[str]]:
    """One message to each user, ``SEND_PARALLEL`` at a time; the keys answered 202, the failures."""
    accepted: set[str] = set()
    errors: Counter[str] = Counter()
    queue = list(enumerate(users))
    plan = target.plan

    async def worker() -> None:
        conn = HttpConnection(*target.http)
        try:
            while queue:
                i, user = queue.pop()
                key = f"{tag}-{i}"
                try:
                    status, _ = await conn.send(plan.request(conn, sender, user.name, stamp(key)))
                except HttpError:
                    errors["connection"] += 1
                    continue
                if status == 202:
                    accepted.add(key)
                else:
                    errors[str(status)] += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(SEND_PARALLEL)))
    return accepted, errors


async def run(target: CimTarget, args: argparse.Namespace) -> Report:
    """The whole scenario on ``target`` (a cluster of its own with at least two nodes)."""
    assert target.cluster is not None
    tag = uuid.uuid4().hex[:6]
    users = await target.users([f"r{tag}-{i}" for i in range(args.clients + 1)])
    sender, clients = users[0], users[1:]
    victim = target.cluster.node_procs[0]
    receipts = Receipts(f"{tag}-")
    http = HttpPool(*target.http, CONNECT_PARALLEL)
    storm = _Storm(http, receipts)
    report = Report("reconnect", {"clients": args.clients, "nodes": len(target.cluster.node_procs)})
    try:
        async with ReceiverPool(receipts) as pool:
            at = (target.cluster.host, victim.port)
            receivers = await connect_all(pool, clients, at=at, on_lost=storm.lost)
            # The victim stays named so that its CPU is never counted as its parent's (the
            # generator's); its figure is dropped once it is dead.
            cpu = CpuWindow(target.processes())
            cpu.start()
            killed = time.monotonic()
            victim.kill()
            if args.overlap:
                storm.go.set()
            accepted, errors = await _send_each(target, sender, clients, tag)
            sent_s = time.monotonic() - killed
            storm.go.set()
            await receipts.wait(
                lambda: len(storm.relogged) == len(receivers) and accepted <= receipts.by_key.keys(),
                killed + args.timeout - time.monotonic(),
            )
            used = {k: v for k, v in cpu.stop().items() if target.processes().get(k) != victim.pid}
            run = _figures(receivers, storm, receipts, accepted, tag, killed, used)
            run.figures["all sent s"] = round(sent_s, 2)
            run.notes = {"errors": dict(errors), "overlap": args.overlap}
            report.runs.append(run)
    finally:
        await storm.close()
        http.close()
    return report


def _figures(
    receivers: list[FrameReceiver],
    storm: _Storm,
    receipts: Receipts,
    accepted: set[str],
    tag: str,
    killed: float,
    used: dict[str, float],
) -> Run:
    done: list[float] = []
    for i, receiver in enumerate(receivers):
        entry = receipts.by_key.get(f"{tag}-{i}")
        if receiver in storm.relogged and entry is not None:
            done.append(max(storm.relogged[receiver], entry[3] / 1e9) - killed)
    relogged = [t - killed for t in storm.relogged.values()]
    run = Run("cim", "client")
    run.figures = {
        "clients": len(receivers),
        "logged in again": len(relogged),
        "all logged in s": round(max(relogged), 2) if len(relogged) == len(receivers) else None,
        "done p50 s": round(percentile(done, 0.5), 2),
        "done p99 s": round(percentile(done, 0.99), 2),
        "all done s": round(max(done), 2) if len(done) == len(receivers) else None,
        "sent": len(accepted),
        "refused": len(receivers) - len(accepted),
        "lost": len(accepted - receipts.by_key.keys()),
    }
    run.set_cpu(used, len(receivers))
    return run
