"""HTTP to the route, shared by ``Client`` and ``AdminClient``: the ``/api/v1`` URL, the
error envelope turned into ``CimApiError``, and the retry of sends that a retry cannot duplicate."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from cim_client._exceptions import CimApiError
from cim_client._tls import tls_context

__all__ = ["RouteHttp", "api_url", "raise_for_error", "with_retries"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
RETRY_ATTEMPTS = 5
RETRY_BASE_S = 0.1


def api_url(route_url: str) -> str:
    """The ``/api/v1`` base of a route given as ``http://host:port`` (with or without the suffix)."""
    base = route_url.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


def raise_for_error(resp: httpx.Response) -> None:
    """Raise ``CimApiError`` for a 4xx/5xx answer, with the envelope's code and detail."""
    if resp.status_code < 400:
        return
    code, detail = f"http_{resp.status_code}", resp.text[:200]
    with contextlib.suppress(ValueError):
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            code, detail = body["error"], str(body.get("detail") or "")
    raise CimApiError(resp.status_code, code, detail)


async def with_retries(call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()``, again after a transport error or ``503`` (up to 5 tries, doubling pauses).

    Only for calls that are safe to repeat: sends carry one ``client_msg_id`` over every try.
    """
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return await call()
        except (httpx.TransportError, CimApiError) as exc:
            if attempt == RETRY_ATTEMPTS or (isinstance(exc, CimApiError) and exc.status != 503):
                raise
            delay = RETRY_BASE_S * 2 ** (attempt - 1)
            log.info("attempt %d failed (%s), retrying in %.2fs", attempt, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class RouteHttp:
    """The route's ``/api/v1`` over one ``httpx.AsyncClient`` (made here unless given, checking
    an HTTPS route's certificate as ``cim_client._tls`` says; closed by ``aclose`` only when
    made here)."""

    def __init__(
        self, route_url: str, http: httpx.AsyncClient | None = None, tls_ca: str | None = None
    ) -> None:
        self.api = api_url(route_url)
        self.root = self.api.removesuffix("/api/v1")
        self.http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_S, verify=tls_context(tls_ca))
        self._own_http = http is None
        self._closed = False

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call of ``/api/v1{path}``: the decoded JSON answer (None when empty), or ``CimApiError``."""
        resp = await self.http.request(method, self.api + path, json=json, params=params, headers=headers)
        raise_for_error(resp)
        return resp.json() if resp.content else None

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it. Idempotent."""
        if self._own_http and not self._closed:
            self._closed = True
            await self.http.aclose()
