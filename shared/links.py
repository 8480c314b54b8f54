"""How a cim process reaches NATS and Redis: credentials, TLS, and a check at start.

Credentials travel in the URLs (``nats://user:pass@host:port``,
``redis://user:pass@host:port/0``; ``tls://`` and ``rediss://`` for TLS) or,
for NATS, in a credentials file (``CIM_NATS_CREDS``). ``preflight`` runs once
before a route or node serves: given no credentials
(``shared.settings.credentials_problem``), or refused by a server, the process
exits 2 with a message saying which, instead of retrying forever.
Certificates of ``tls://``/``rediss://`` servers are checked against
``CIM_TLS_CA`` when set, else the system store.

Each NATS user gets replies in an inbox of its own (``inbox_prefix``), so the
server's permissions can keep one user from reading another's replies.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError, ResponseError

from shared.settings import CommonSettings, credentials_problem, redacted

__all__ = [
    "Refused",
    "client_tls",
    "connect_once",
    "inbox_prefix",
    "nats_options",
    "nats_servers",
    "redis_client",
    "preflight",
    "redis_options",
]

log = logging.getLogger(__name__)

PREFLIGHT_TIMEOUT_S = 3.0


class Refused(Exception):
    """This process has no credentials for NATS or Redis, or a server refused them."""


def inbox_prefix(user: str) -> str:
    """The reply inbox of NATS user ``user``: ``_INBOX.<user>`` (its permissions allow ``.>`` under it)."""
    return f"_INBOX.{user}"


@functools.cache
def client_tls(ca: str = "") -> ssl.SSLContext:
    """A client context that checks server certificates against ``ca`` (PEM), else the system
    store; one per bundle, shared (loading a store costs milliseconds)."""
    return ssl.create_default_context(cafile=ca or None)


def nats_servers(url: str) -> list[str]:
    """The servers of ``CIM_NATS_URL``: one URL, or several separated by commas (a cluster),
    each with its own credentials, e.g. ``nats://u:p@h1:4222,nats://u:p@h2:4222``."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("CIM_NATS_URL names no server")
    return servers


def nats_options(url: str, creds: str = "", ca: str = "") -> dict[str, Any]:
    """Keyword arguments for ``nats.connect(...)``: the servers of ``url`` (see ``nats_servers``),
    credentials file, TLS, own inbox (of the first server's user: one user for the cluster)."""
    servers = nats_servers(url)
    first = urlsplit(servers[0])
    options: dict[str, Any] = {"servers": servers}
    if first.username:
        options["inbox_prefix"] = inbox_prefix(unquote(first.username)).encode()
    if creds:
        options["user_credentials"] = creds
    if any(urlsplit(server).scheme == "tls" for server in servers) or ca:
        options["tls"] = client_tls(ca)
    return options


def redis_options(url: str, ca: str = "") -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url(url, ...)``: the CA of a ``rediss://`` server."""
    return {"ssl_ca_certs": ca} if ca and urlsplit(url).scheme == "rediss" else {}


CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""``redis+cluster://user:pass@h1:p1,h2:p2,...`` (``rediss+cluster://`` with TLS): any members
of a Redis Cluster, one user for all; the client learns the rest of the cluster from them."""


def is_cluster_url(url: str) -> bool:
    """Whether ``CIM_REDIS_URL`` names a Redis Cluster (``CLUSTER_SCHEMES``)."""
    return url.partition("://")[0] in CLUSTER_SCHEMES


def redis_client(url: str, ca: str = "", **options: Any) -> Redis | RedisCluster:
    """The redis-py asyncio client for ``CIM_REDIS_URL``: a ``RedisCluster`` for the
    ``redis+cluster://`` form (see ``CLUSTER_SCHEMES``), else ``Redis.from_url``; ``options``
    (``decode_responses``, timeouts, ...) go to either."""
    scheme, _, rest = url.partition("://")
    if not is_cluster_url(url):
        return Redis.from_url(url, **redis_options(url, ca), **options)
    userinfo, _, hosts = rest.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes = []
    for address in hosts.split("/")[0].split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{redacted(url)}: {address!r} is not host:port")
        nodes.append(ClusterNode(host, int(port)))
    tls = CLUSTER_SCHEMES[scheme]
    if tls:
        options["ssl"] = True
        if ca:
            options["ssl_ca_certs"] = ca
    return RedisCluster(
        startup_nodes=nodes, username=unquote(user) or None, password=unquote(password) or None, **options
    )


async def preflight(settings: CommonSettings) -> None:
    """Connect to NATS and Redis once; raise ``Refused`` when one refuses the credentials of
    ``settings`` (or their TLS fails). A server that cannot be reached is only logged: the
    process's own connection logic waits and retries for it, as before."""
    problem = credentials_problem(settings.nats_url, settings.nats_creds, settings.redis_url)
    if problem:
        raise Refused(problem)
    await _check_nats(settings.nats_url, settings.nats_creds, settings.tls_ca)
    await _check_redis(settings.redis_url, settings.tls_ca)


async def connect_once(
    url: str, creds: str = "", ca: str = "", error_cb: Callable[[Exception], Awaitable[None]] | None = None
) -> Nats:
    """One connection attempt, no reconnects; a failed attempt is closed before it raises
    (nats-py leaves its socket open otherwise). ``error_cb`` hears the server's errors."""

    async def quiet(exc: Exception) -> None:
        """nats-py would log each error with a traceback; the caller decides what they mean."""

    nc = Nats()
    try:
        await nc.connect(
            allow_reconnect=False,
            connect_timeout=PREFLIGHT_TIMEOUT_S,
            max_reconnect_attempts=0,
            error_cb=error_cb or quiet,
            **nats_options(url, creds, ca),
        )
    except BaseException:
        await nc.close()
        raise
    return nc


async def _check_nats(url: str, creds: str, ca: str) -> None:
    refused: list[str] = []

    async def on_error(exc: Exception) -> None:
        text = str(exc).lower()
        if "authorization" in text or "authentication" in text or "permissions" in text:
            refused.append(str(exc))

    try:
        nc = await connect_once(url, creds, ca, on_error)
    except (TimeoutError, NatsError, OSError, ssl.SSLError) as exc:
        if refused or "authorization" in str(exc).lower():
            raise Refused(f"NATS at {redacted(url)} refused the credentials: {refused or exc}") from exc
        if isinstance(exc, ssl.SSLError):
            raise Refused(f"NATS at {redacted(url)}: TLS failed: {exc}") from exc
        log.warning("NATS at %s not reachable yet: %r", redacted(url), exc)
        return
    await nc.close()
    if refused:
        raise Refused(f"NATS at {redacted(url)} refused the credentials: {refused[0]}")


async def _check_redis(url: str, ca: str) -> None:
    redis = redis_client(url, ca, socket_connect_timeout=PREFLIGHT_TIMEOUT_S)
    try:
        await redis.ping()
    except (AuthenticationError, ResponseError) as exc:
        raise Refused(f"Redis at {redacted(url)} refused the credentials: {exc}") from exc
    except (RedisError, RedisClusterException, OSError) as exc:
        log.warning("Redis at %s not reachable yet: %r", redacted(url), exc)
    finally:
        await redis.aclose()
