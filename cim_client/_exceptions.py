"""The errors the client raises, and which of them a later try may cure.

    CimError(code, detail)          -- shared.errors: anything cim raises on purpose;
    |                                  ``connect()`` refused by the node (``bad_token``, ...)
    |                                  or the client used wrongly (``no_password``, ...)
    +-- CimApiError(status, code)   -- an HTTP error answer of the route's ``{error, detail}``
    +-- ConnectionClosed            -- the session ended (``close()``, a final kick, a refused login)
"""

from __future__ import annotations

import httpx

from shared.errors import ApiError, CimError

__all__ = ["CimApiError", "CimError", "ConnectionClosed", "retryable"]

CimApiError = ApiError
"""An HTTP error answer of the route: ``status``, ``code`` and ``detail``."""


class ConnectionClosed(CimError):
    """The session ended (``close()``, a final kick or a refused login)."""

    code = "closed"


def retryable(exc: BaseException) -> bool:
    """Whether a failed HTTP call or TCP connect is worth another try later."""
    if isinstance(exc, CimApiError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, OSError | EOFError | TimeoutError | httpx.TransportError)
