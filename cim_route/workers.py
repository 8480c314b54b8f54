"""``cim route --workers N``: N route processes on one port, so the route uses every core.

Each worker is a whole route (``python -m cim_route --worker``) with its own listening socket
bound with ``SO_REUSEPORT``: the kernel spreads new connections over the workers evenly by
their address hash. (One shared socket, as uvicorn's own ``--workers`` uses, lets whichever
worker wakes first take a whole burst of keep-alive connections, so one core can end up with
most of them.) This process only supervises: it holds the port (bound, not listening, so that
port 0 becomes one port for all), forwards SIGTERM/SIGINT to every worker, waits for them and
exits 0 when they all stopped cleanly. If a worker dies on its own, the others are stopped and
it exits 1, for the outer supervisor to see. Workers get SIGTERM if this process dies.

What must stay exactly-once already does across processes: delayed messages are claimed
atomically in Redis (``lua/delayed_claim.lua``), each history entry is written by the worker
that accepted its message, and ``/metrics`` adds up every worker's counts through
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a private folder made
here and removed at the end).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

from shared.settings import RouteSettings

__all__ = ["WORKER_FLAG", "listen_socket", "supervise"]

log = logging.getLogger(__name__)

WORKER_FLAG = "--worker"
_STOP_TIMEOUT_S = 20.0
_PR_SET_PDEATHSIG = 1


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (uvicorn makes it listen)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def supervise(settings: RouteSettings) -> int:
    """Run ``settings.route_workers`` workers until a signal; the exit code."""
    with listen_socket(settings.route_host, settings.route_port) as held:
        port = held.getsockname()[1]
        metrics_dir = tempfile.mkdtemp(prefix="cim-route-metrics-")
        try:
            return _run(settings.route_workers, port, metrics_dir)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(count: int, port: int, metrics_dir: str) -> int:
    stopping = threading.Event()
    exited = threading.Condition()

    def on_signal(signum: int, frame: object) -> None:
        log.info("stopping %d workers (%s)", count, signal.Signals(signum).name)
        stopping.set()
        with exited:
            exited.notify_all()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    env = {**os.environ, "CIM_ROUTE_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    workers: list[subprocess.Popen[bytes]] = []
    crashed: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cim_route", WORKER_FLAG], env=env, preexec_fn=_die_with_parent
                )
            )
        log.info("route: %d workers on port %d", count, port)
        while not stopping.is_set() and all(w.poll() is None for w in workers):
            with exited:
                exited.wait(0.2)
        crashed = [w for w in workers if w.poll() is not None]
        for w in crashed:
            log.error("route worker pid %d exited with %s; stopping the others", w.pid, w.returncode)
    finally:
        codes = _stop(workers)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopping.is_set() and not crashed and all(code == 0 for code in codes) else 1


def _stop(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM every worker still running, wait, SIGKILL the ones that do not stop."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    codes = []
    for w in workers:
        try:
            codes.append(w.wait(_STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            log.warning("route worker pid %d did not stop: killing it", w.pid)
            w.kill()
            codes.append(w.wait())
    return codes


def _die_with_parent() -> None:
    """In the worker, before exec: get SIGTERM when the supervisor dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
