"""Per-process settings, read once from ``CIM_*`` variables at the edge and passed down.

Nothing else in cim reads ``os.environ``. ``from_env`` validates every value and
raises ``SettingsError`` naming the variable, so a process fails at start, not
at the first message.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self
from urllib.parse import urlsplit

from shared.errors import SettingsError
from shared.logformat import LOG_FORMAT, EscapingFormatter
from shared.protocol import NODE_ID_RE

__all__ = [
    "BALANCERS",
    "DEFAULT_ROUTE_URL",
    "CommonSettings",
    "NodeSettings",
    "RateLimit",
    "RouteSettings",
    "api_keys",
    "credentials_problem",
    "parse_list",
    "redacted",
]

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


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for messages and logs; in a
    comma-separated list (``CIM_NATS_URL`` of a cluster) every URL's."""
    return ",".join(map(_redacted_one, url.split(",")))


def _redacted_one(url: str) -> str:
    password = urlsplit(url).password
    return url if password is None else url.replace(f":{password}@", ":***@", 1)


def credentials_problem(nats_url: str, nats_creds: str, redis_url: str) -> str | None:
    """What a server process lacks to authenticate to NATS and Redis, or None."""
    if not nats_creds and not urlsplit(nats_url).username:
        return (
            f"CIM_NATS_URL={redacted(nats_url)} has no user: give nats://USER:PASSWORD@HOST:PORT "
            "(tls://... with TLS) or CIM_NATS_CREDS=FILE"
        )
    if not urlsplit(redis_url).password:
        return (
            f"CIM_REDIS_URL={redacted(redis_url)} has no password: "
            "give redis://USER:PASSWORD@HOST:PORT/0 (rediss://... with TLS)"
        )
    return None


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
    nats_creds: str = ""
    """A NATS credentials file, instead of (or with) a user in ``nats_url``."""
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
    tls_cert: str = ""
    """PEM certificate (chain) of this process's listener; with ``tls_key`` it serves TLS."""
    tls_key: str = ""
    nats_kv_replicas: int = 1
    """Servers of a NATS cluster that keep the registry bucket (1..5; 3 with ``cim up --ha``)."""
    redis_wait: int = 0
    """Replicas that must confirm a message write (Redis ``WAIT``); 0 = do not wait."""
    redis_wait_ms: int = 100
    """How long a write waits for those replicas before it counts as unconfirmed."""
    tls_ca: str = ""
    """PEM bundle that ``tls://``/``rediss://`` servers' certificates are checked against
    (default: the system store)."""

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
        """Log to stderr at ``CIM_LOG_LEVEL``, one line per record (control characters
        escaped: ``shared.logformat``), in every server process."""
        handler = logging.StreamHandler()
        handler.setFormatter(EscapingFormatter(LOG_FORMAT))
        logging.basicConfig(level=self.log_level.upper(), handlers=[handler])

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
        if not 1 <= self.nats_kv_replicas <= 5:
            raise SettingsError(detail="CIM_NATS_KV_REPLICAS must be between 1 and 5")
        if self.redis_wait < 0:
            raise SettingsError(detail="CIM_REDIS_WAIT must be 0 or more")
        if self.redis_wait_ms <= 0:
            raise SettingsError(detail="CIM_REDIS_WAIT_MS must be positive")
        if self.redis_wait and self.redis_url.partition("://")[0].endswith("+cluster"):
            # WAIT counts the replicas of the writes made on its own connection; a cluster
            # pipeline sends it to every master and sums, which would vouch for nothing.
            raise SettingsError(
                detail="CIM_REDIS_WAIT is not supported on a Redis Cluster (redis+cluster://) yet"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError(detail="CIM_TLS_CERT and CIM_TLS_KEY go together: give both or neither")
        for name in ("nats_creds", "tls_cert", "tls_key", "tls_ca"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise SettingsError(detail=f"CIM_{name.upper()}={path!r}: no such file")

    @property
    def tls(self) -> bool:
        """Whether this process's listener serves TLS."""
        return bool(self.tls_cert)

    def server_tls(self) -> ssl.SSLContext | None:
        """The listener's TLS context (``tls_cert``/``tls_key``), or None without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


def _parse(var: str, text: str, annotation: str) -> Any:
    parser = _PARSERS[annotation]
    try:
        return parser(text)
    except ValueError as exc:
        raise SettingsError(detail=f"{var}={text!r}: {exc}") from exc


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, as a browser sends it in ``Origin``; "" if none."""
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{shown}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _default_node_id() -> str:
    host = re.sub(r"[^a-z0-9-]", "-", socket.gethostname().lower())[:40]
    return f"{host}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class NodeSettings(CommonSettings):
    """A connection node."""

    node_id: str = field(default_factory=_default_node_id)
    node_host: str = "127.0.0.1"
    node_port: int = 9000
    node_ws_port: int = 0
    """WebSocket listener (path ``/ws``) on ``node_host``; 0 = none."""
    web_origins: tuple[str, ...] = ()
    """``Origin`` values a browser's WebSocket may come from (``*`` = any); default: the origin
    of ``route_url``. A client that sends no ``Origin`` (not a browser) is not checked."""
    route_url: str = ""
    """The route's public URL (``CIM_ROUTE_URL``): its origin is the default web origin."""
    advertise_host: str = ""
    """Host clients are told to connect to; default ``node_host``."""
    login_timeout_s: float = 10.0
    max_pending: int = 1000
    """Connections that have not logged in yet, in total; past it a new one is closed at once."""
    max_pending_per_address: int = 64
    """The same, from one client address."""
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
        if not NODE_ID_RE.fullmatch(self.node_id):
            raise SettingsError(detail=f"CIM_NODE_ID={self.node_id!r}: use 1-64 of [a-z0-9-]")
        if self.write_buffer < self.max_frame:
            raise SettingsError(detail="CIM_WRITE_BUFFER must be at least CIM_MAX_FRAME")
        if self.drain_rate <= 0:
            raise SettingsError(detail="CIM_DRAIN_RATE must be positive")
        if not 0 <= self.node_ws_port <= 65535:
            raise SettingsError(detail="CIM_NODE_WS_PORT must be 0 (off) or a port number")
        for origin in self.web_origins:
            if origin != "*" and not _origin_of(origin):
                raise SettingsError(detail=f"CIM_WEB_ORIGINS: {origin!r} is not an http(s) origin")
        if self.route_url and not _origin_of(self.route_url):
            raise SettingsError(detail=f"CIM_ROUTE_URL={self.route_url!r} is not an http(s) URL")
        if self.max_pending <= 0 or self.max_pending_per_address <= 0:
            raise SettingsError(detail="CIM_MAX_PENDING and CIM_MAX_PENDING_PER_ADDRESS must be positive")
        if self.max_devices <= 0:
            raise SettingsError(detail="CIM_MAX_DEVICES must be positive")

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The browser origins the WebSocket listener accepts (empty: none; ``*``: any)."""
        if self.web_origins:
            return frozenset(o if o == "*" else _origin_of(o) for o in self.web_origins)
        return frozenset([_origin_of(self.route_url)]) if self.route_url else frozenset()

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
    history_scan: int = 10_000
    """Most history entries one ``GET /history`` looks at (a ``q`` search says ``more``)."""
    history_max: int = 100_000
    """Most entries a conversation's history keeps (older ones are trimmed)."""
    max_request: int = 65536
    """Largest request body the route reads (413 ``too_large`` past it, before reading)."""
    http_request_s: float = 10.0
    """A request must be complete this long after its first byte, or its connection is closed."""
    http_idle_s: float = 60.0
    """An HTTP connection that sends nothing this long is closed."""
    auth_rate: RateLimit = field(default_factory=lambda: RateLimit(20, 40))
    """Registrations and logins per minute from one client address, and their burst."""
    node_hosts: tuple[str, ...] = ()
    """If set, the only hosts a node record may name (others are ignored and logged)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks of proxies whose ``X-Forwarded-For`` names the client."""
    login_max_failures: int = 10
    """Wrong passwords for one username from one address that make that address wait
    ``login_lockout_s`` (429) before its next try for that username; other addresses are not
    affected."""
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
        names = ("history_scan", "history_max", "login_max_failures", "login_lockout_s", "max_request")
        for name in (*names, "http_request_s", "http_idle_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(detail=f"CIM_{name.upper()} must be positive")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise SettingsError(detail=f"CIM_TRUSTED_PROXIES: {exc}") from exc
