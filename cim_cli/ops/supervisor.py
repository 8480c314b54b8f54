"""Keep ``cim up``'s children running: one that exits is started again, after a back-off.

A node drained through ``POST /nodes/{id}/drain`` exits 0 when it is empty, a
crashed or SIGKILLed one with its code; either way the ``Supervisor`` starts it
again the same way (same id, port, environment and data), and says so on
standard error. The back-off starts at 1 s and doubles up to 30 s while the
process keeps dying; it starts over once the process stayed up for 60 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Self, TextIO

from cim_cli.ops.services import Service

__all__ = ["Backoff", "Supervisor"]

LISTEN_TIMEOUT_S = 60.0


class Backoff:
    """The delays before each restart of one process: ``first`` doubling up to ``cap``, back to
    ``first`` when the process had been up for ``reset_after`` seconds."""

    def __init__(self, first: float = 1.0, cap: float = 30.0, reset_after: float = 60.0) -> None:
        self.first = first
        self.cap = cap
        self.reset_after = reset_after
        self._next = first

    def delay(self, uptime: float) -> float:
        """The wait before restarting a process that exited after ``uptime`` seconds up."""
        if uptime >= self.reset_after:
            self._next = self.first
        delay = self._next
        self._next = min(self.cap, delay * 2)
        return delay


class Supervisor:
    """``async with Supervisor(services, err):`` watches each service in a task of its own and
    restarts it when it exits; leaving the block cancels and awaits every task (before the
    services are stopped, so that nothing is restarted while stopping)."""

    def __init__(self, services: Iterable[Service], err: TextIO) -> None:
        self.services = list(services)
        self.err = err
        self._tasks: set[asyncio.Task[None]] = set()
        # One thread per service blocks in its ``wait()``: an exit is seen at once. They have an
        # executor of their own so that they never hold the default one's few threads.
        self._waiters = ThreadPoolExecutor(max(1, len(self.services)), thread_name_prefix="cim-up-wait")

    async def __aenter__(self) -> Self:
        self._tasks = {asyncio.create_task(self._watch(s), name=f"supervise {s.name}") for s in self.services}
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        # A waiting thread ends when its process does, which stopping the cluster sees to.
        self._waiters.shutdown(wait=False, cancel_futures=True)

    def _say(self, text: str) -> None:
        print(f"cim up: {text}", file=self.err, flush=True)

    async def _watch(self, service: Service) -> None:
        backoff = Backoff()
        while True:
            assert service.proc is not None
            await asyncio.get_running_loop().run_in_executor(self._waiters, service.proc.wait)
            delay = backoff.delay(time.monotonic() - service.started_at)
            self._say(
                f"{service.name} (pid {service.pid}) exited (code {service.returncode}); "
                f"restarting in {delay:g} s (log: {service.log_path})"
            )
            await asyncio.sleep(delay)
            await self._restart(service)

    async def _restart(self, service: Service) -> None:
        """Start it again; if it dies before it listens, the next round reports that."""
        try:
            await service.astart(LISTEN_TIMEOUT_S)
        except RuntimeError:
            return
        except TimeoutError:
            self._say(f"{service.name} does not listen after {LISTEN_TIMEOUT_S:g} s: killing it")
            await asyncio.to_thread(service.kill)
            return
        self._say(f"{service.name} restarted (pid {service.pid})")
