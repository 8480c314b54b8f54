"""cim's client library: log in through the route, hold a live session to a node, send.

``Client`` is a user's session (HTTP calls plus one self-healing node connection);
``AdminClient`` makes the server-side calls that take an API key.
"""

from __future__ import annotations

from cim_client._admin import AdminClient
from cim_client._sdk import (
    CimApiError,
    Client,
    ConnectionClosed,
    ConnectionState,
    Message,
    NodeAddress,
    SendResult,
    api_url,
    raise_for_error,
    retryable,
)

__all__ = [
    "AdminClient",
    "CimApiError",
    "Client",
    "ConnectionClosed",
    "ConnectionState",
    "Message",
    "NodeAddress",
    "SendResult",
    "api_url",
    "raise_for_error",
    "retryable",
]
