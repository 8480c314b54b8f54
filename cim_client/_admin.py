"""Server-side calls of the route, authenticated with an ``X-API-Key``.

Used by ``cim push``, ``cim status``, the launcher and back-end services that
push to users. Errors raise ``CimApiError`` like the user ``Client``.
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from cim_client._http import RouteHttp

__all__ = ["AdminClient"]


class AdminClient:
    """An operator or back end talking to the route with an API key."""

    def __init__(
        self, route_url: str, api_key: str, http: httpx.AsyncClient | None = None, tls_ca: str | None = None
    ) -> None:
        self._route = RouteHttp(route_url, http, tls_ca)
        self.route_url = self._route.root
        self._headers = {"X-API-Key": api_key}

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._route.call(method, path, json=json, params=params, headers=self._headers)

    async def push(self, to: list[str] | str, body: str, client_msg_id: str | None = None) -> dict[str, Any]:
        """``POST /push``: ``to`` is a list of usernames (stored, kind ``push``) or ``"*"``
        (every online user, not stored). Returns ``{id, recipients}``."""
        payload: dict[str, Any] = {"to": to if to == "*" else list(to), "body": body}
        if client_msg_id is not None:
            payload["client_msg_id"] = client_msg_id
        return await self._call("POST", "/push", json=payload)

    async def nodes(self) -> list[dict[str, Any]]:
        """``GET /nodes`` -> ``[{id, host, port, connections, state, started_at}]``."""
        return await self._call("GET", "/nodes")

    async def drain(self, node_id: str) -> None:
        """``POST /nodes/{id}/drain``: the node takes no new logins and moves its clients away."""
        await self._call("POST", f"/nodes/{node_id}/drain")

    async def kick(self, username: str) -> None:
        """``DELETE /sessions/{username}``: that user's session is closed with ``kick{revoked}``."""
        await self._call("DELETE", f"/sessions/{username}")

    async def online(self, prefix: str = "", limit: int = 1000) -> tuple[list[str], int]:
        """``GET /users/online`` with the API key -> (usernames, total before ``limit``)."""
        answer = await self._call("GET", "/users/online", params={"prefix": prefix, "limit": limit})
        return list(answer["users"]), int(answer["total"])

    async def ready(self) -> bool:
        """Whether ``GET /readyz`` (at the root) answers 200."""
        try:
            resp = await self._route.http.get(self._route.root + "/readyz")
        except httpx.TransportError:
            return False
        return resp.status_code == 200

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        await self._route.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
