"""``--procs N``: the p2p generator split into N worker processes, their figures merged.

The parent makes the users (one setup for all); worker ``i`` gets every N-th
of them, connects their receivers, and its share of the senders sends only
among its own users, so each worker sees all receipts of its own sends. The
steps are held together by barriers: all connected -> the parent starts its
CPU window -> all send and wait for receipts -> each puts its ``Share`` on a
queue -> the parent closes the window while the workers are still alive (each
is a named process ``generator-i`` of the CPU figures) -> the workers exit.
Workers are ``spawn``ed: a fresh interpreter, no forked event loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
from dataclasses import dataclass
from typing import Any

from cim_cli.bench.cpu import CpuWindow
from cim_cli.bench.p2p import Share, Target, load_share, make_users, to_run, warm_up
from cim_cli.bench.receipts import Receipts
from cim_cli.bench.receiver import ReceiverPool, connect_all
from cim_cli.bench.report import GENERATOR, Run
from cim_cli.bench.target import SendPlan, User
from cim_cli.ops.launcher import run_async

__all__ = ["measure_procs"]

STEP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class _Job:
    plan: SendPlan
    users: list[User]
    concurrency: int
    duration: float
    grace: float


async def _work(job: _Job, barrier: Any, results: Any) -> None:
    async with ReceiverPool(Receipts()) as pool:
        await connect_all(pool, job.users)
        await warm_up(job.plan, job.users)
        await asyncio.to_thread(barrier.wait, STEP_TIMEOUT_S)  # all connected
        await asyncio.to_thread(barrier.wait, STEP_TIMEOUT_S)  # the parent's CPU window is open
        share = await load_share(job.plan, job.users, pool.receipts, job.concurrency, job.duration, job.grace)
        results.put(share)
        await asyncio.to_thread(barrier.wait, STEP_TIMEOUT_S)  # the parent's CPU window is closed


def _worker_main(job: _Job, barrier: Any, results: Any) -> None:
    run_async(_work(job, barrier, results))


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def measure_procs(
    target: Target, receivers: int, procs: int, concurrency: int, duration: float, grace: float
) -> Run:
    """One p2p run with the generator in ``procs`` processes."""
    if concurrency < procs or receivers < 2 * procs:
        raise ValueError("--procs N needs at least N senders and 2 N receivers")
    users = await make_users(target, receivers)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    jobs = [
        _Job(target.plan, users[i::procs], share, duration, grace)
        for i, share in enumerate(_split(concurrency, procs))
    ]
    workers = [ctx.Process(target=_worker_main, args=(job, barrier, results), daemon=True) for job in jobs]
    for worker in workers:
        worker.start()
    try:
        return await _drive(target, workers, barrier, results, concurrency, receivers)
    except BaseException:
        barrier.abort()  # frees the workers still waiting
        raise
    finally:
        for worker in workers:
            await asyncio.to_thread(worker.join, STEP_TIMEOUT_S)
            if worker.is_alive():
                worker.kill()
                await asyncio.to_thread(worker.join, STEP_TIMEOUT_S)


async def _drive(
    target: Target,
    workers: list[Any],
    barrier: Any,
    results: Any,
    concurrency: int,
    receivers: int,
) -> Run:
    await asyncio.to_thread(barrier.wait, STEP_TIMEOUT_S)
    named = {f"{GENERATOR}-{i + 1}": w.pid for i, w in enumerate(workers)}
    cpu = CpuWindow({**target.processes(), **named})
    cpu.start()
    await asyncio.to_thread(barrier.wait, STEP_TIMEOUT_S)
    shares: list[Share] = []
    for _ in workers:
        try:
            shares.append(await asyncio.to_thread(results.get, True, STEP_TIMEOUT_S))
        except queue_module.Empty as exc:
            raise TimeoutError("a bench worker process sent no result") from exc
    used = cpu.stop()
    await asyncio.to_thread(barrier.wait, STEP_TIMEOUT_S)
    notes = {"concurrency": concurrency, "receivers": receivers, "procs": len(workers)}
    return to_run(target.name, shares, used, notes)
