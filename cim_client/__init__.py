"""cim's client library: log in through the route, hold a live session to a node, send.

``Client`` is a user's session (HTTP calls plus one self-healing node connection);
``AdminClient`` makes the server-side calls that take an API key. Everything
public is listed in ``__all__``; the modules behind it (``_client``, ``_link``,
``_http``, ``_models``, ``_exceptions``, ``_admin``) are private.
"""

from __future__ import annotations

from cim_client._admin import AdminClient
from cim_client._client import Client
from cim_client._exceptions import CimApiError, CimError, ConnectionClosed, retryable
from cim_client._http import api_url
from cim_client._models import ConnectionState, Message, NodeAddress, SendResult
from shared.protocol import MessageKind

__all__ = [
    "AdminClient",
    "CimApiError",
    "CimError",
    "Client",
    "ConnectionClosed",
    "ConnectionState",
    "Message",
    "MessageKind",
    "NodeAddress",
    "SendResult",
    "api_url",
    "retryable",
]

