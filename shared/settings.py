"""Per-process settings, read once from ``CIM_*`` variables at the edge and passed down.

Nothing else in cim reads ``os.environ``. ``from_env`` validates every value and
raises ``SettingsError`` naming the variable, so a process fails at start, not
at the first message.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

from shared.errors import SettingsError

__all__ = [
    "BALANCERS",
    "DEFAULT_ROUTE_URL",
    "CommonSettings",
    "NodeSettings",
    "RateLimit",
    "RouteSettings",
    "NODE_ID_RE",
    "NAME_RE",
    "api_keys",
    "parse_list",
]

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
"""Usernames and group names."""
NODE_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
BALANCERS = ("round_robin", "consistent_hash", "least_connections", "random")
DEFAULT_ROUTE_URL = "http://127.0.0.1:8080"
"""Where clients (``cim chat``, ``cim status``, ``cim push``) look for the route by default:
a route with default settings, as ``cim up`` starts it."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Token bucket: ``rate`` messages per second, bursts of ``burst``; rate 0 = off."""

    rate: float = 200.0
    burst: int = 400

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        rate_s, _, burst_s = text.partition("/")
        rate = float(rate_s)
        burst = int(burst_s) if burst_s else max(1, int(rate * 2))
        if rate < 0 or burst < 0:
            raise ValueError("negative rate limit")
        return cls(rate=rate, burst=burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0


def parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated list such as ``CIM_API_KEYS``: items stripped, empty ones dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def api_keys(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The API keys ``CIM_API_KEYS`` lists in ``environ`` (what a route started there accepts)."""
    return parse_list(environ.get("CIM_API_KEYS", ""))


def _parse_bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


# A field's annotation (its outer name) -> the parser of its variable's text.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _parse_bool,
    "RateLimit": RateLimit.parse,
    "tuple": parse_list,
}


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """What every server process needs: where NATS and Redis are, the shared secret, limits."""

    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "cim:"
    """Key prefix; tests give each cluster its own so they share one Redis."""
    secret: str = ""
    token_ttl: int = 86400
    max_frame: int = 65536
    max_body: int = 8192
    retention_s: int = 7 * 86400
    retention_count: int = 10000
    heartbeat_s: int = 30
    registry_refresh_s: float = 2.0
    """Nodes refresh their registry entry this often; it expires after 3 periods."""
    log_level: str = "info"
    metrics_port: int = -1
    """Port of a separate Prometheus endpoint (nodes); -1 = none, 0 = any free port."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build from ``CIM_<FIELD>`` variables (upper case); ``overrides`` win (CLI flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = "CIM_" + f.name.upper()
            if f.name in overrides and overrides[f.name] is not None:
                values[f.name] = overrides[f.name]
            elif var in environ:
                values[f.name] = _parse(var, environ[var], str(f.type).split("[")[0])
        settings = cls(**values)
        settings.validate()
        return settings

    def configure_logging(self) -> None:
        """Log to stderr at ``CIM_LOG_LEVEL``, one line per record, in every server process."""
        logging.basicConfig(
            level=self.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )

    def validate(self) -> None:
        if not self.secret:
            raise SettingsError(detail="CIM_SECRET must be set (the same on the route and every node)")
        if len(self.secret) < 32:
            raise SettingsError(detail="CIM_SECRET must be at least 32 characters")
        for name in ("max_frame", "max_body", "token_ttl", "heartbeat_s", "retention_count"):
            if getattr(self, name) <= 0:
                raise SettingsError(detail=f"CIM_{name.upper()} must be positive")
        if self.log_level.upper() not in logging.getLevelNamesMapping():
            raise SettingsError(detail=f"CIM_LOG_LEVEL={self.log_level!r}: debug, info, warning or error")
        if self.registry_refresh_s < 1:
            raise SettingsError(detail="CIM_REGISTRY_REFRESH_S must be at least 1")


def _parse(var: str, text: str, annotation: str) -> Any:
    parser = _PARSERS[annotation]
    try:
        return parser(text)
    except ValueError as exc:
        raise SettingsError(detail=f"{var}={text!r}: {exc}") from exc


def _default_node_id() -> str:
    host = re.sub(r"[^a-z0-9-]", "-", socket.gethostname().lower())[:40]
    return f"{host}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class NodeSettings(CommonSettings):
    """A connection node."""

    node_id: str = field(default_factory=_default_node_id)
    node_host: str = "127.0.0.1"
    node_port: int = 9000
    advertise_host: str = ""
    """Host clients are told to connect to; default ``node_host``."""
    login_timeout_s: float = 10.0
    write_buffer: int = 1 << 20
    """A connection whose unsent bytes pass this is a slow reader and is closed."""
    gap_wait_ms: int = 200
    ack_flush_ms: int = 500
    drain_rate: int = 200
    """Kicks per second while draining, so the others' logins don't stampede."""
    drain_timeout_s: float = 60.0
    """Longest a drain (bus ``drain`` or SIGTERM) may take before the rest are closed at once."""
    max_devices: int = 5
    """Devices of one user online at once; a login past it kicks the longest-connected one."""

    def validate(self) -> None:
        CommonSettings.validate(self)
        if not NODE_ID_RE.match(self.node_id):
            raise SettingsError(detail=f"CIM_NODE_ID={self.node_id!r}: use 1-64 of [a-z0-9-]")
        if self.write_buffer < self.max_frame:
            raise SettingsError(detail="CIM_WRITE_BUFFER must be at least CIM_MAX_FRAME")
        if self.drain_rate <= 0:
            raise SettingsError(detail="CIM_DRAIN_RATE must be positive")
        if self.max_devices <= 0:
            raise SettingsError(detail="CIM_MAX_DEVICES must be positive")

    @property
    def public_host(self) -> str:
        if self.advertise_host:
            return self.advertise_host
        return "127.0.0.1" if self.node_host in {"0.0.0.0", "::", ""} else self.node_host


@dataclass(frozen=True, slots=True)
class RouteSettings(CommonSettings):
    """The HTTP route."""

    route_host: str = "127.0.0.1"
    route_port: int = 8080
    route_workers: int = 1
    """Route processes sharing the port (``cim route --workers``); 1 = this process serves."""
    api_keys: tuple[str, ...] = ()
    balancer: str = "round_robin"
    rate_limit: RateLimit = field(default_factory=RateLimit)
    group_max: int = 1000
    idempotency_s: int = 600
    history_limit: int = 200
    login_max_failures: int = 10
    """Wrong passwords in a row that lock a username's logins for ``login_lockout_s``."""
    login_lockout_s: int = 900
    scrypt_n: int = 16384
    """scrypt cost of new password hashes (a power of two); stored with each hash."""
    startup_timeout_s: float = 30.0
    """How long the route tries to reach NATS at start before it gives up (exit non-zero)."""
    scheduler_poll_ms: int = 200
    """How often the route looks for delayed messages that fell due."""
    edit_window_s: int = 86400
    """How long after a send its sender may edit or recall it."""

    def validate(self) -> None:
        CommonSettings.validate(self)
        if self.scrypt_n < 2 or self.scrypt_n & (self.scrypt_n - 1):
            raise SettingsError(detail="CIM_SCRYPT_N must be a power of two")
        if self.scheduler_poll_ms <= 0:
            raise SettingsError(detail="CIM_SCHEDULER_POLL_MS must be positive")
        if self.balancer not in BALANCERS:
            raise SettingsError(detail=f"CIM_BALANCER={self.balancer!r}: one of {', '.join(BALANCERS)}")
        if self.group_max <= 0:
            raise SettingsError(detail="CIM_GROUP_MAX must be positive")
        if self.route_workers < 1:
            raise SettingsError(detail="CIM_ROUTE_WORKERS must be at least 1")
