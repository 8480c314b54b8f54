"""The client address a request comes from: the socket peer, or -- when the peer is one of
``CIM_TRUSTED_PROXIES`` -- the nearest address in ``X-Forwarded-For`` that is not a trusted
proxy (the rightmost one: whatever a client writes further left is not believed)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

__all__ = ["Networks", "client_address", "networks"]

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(items: Sequence[str]) -> Networks:
    """``CIM_TRUSTED_PROXIES`` items (addresses or CIDR networks) parsed; ValueError if bad."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(scope: Scope, trusted: Networks) -> str:
    """The address rate limits and login back-off count by ('' if the server does not know)."""
    client = scope.get("client")
    peer = client[0] if client else ""
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = b",".join(v for k, v in scope["headers"] if k == b"x-forwarded-for").decode("latin-1")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer
