"""The browser pages: the web chat at ``/``, the operator page at ``/admin``, their files under
``/web/``. Static files shipped in the package (``cim_route/web/``), served from memory with an
ETag; not part of the API (no ``/api/v1`` prefix, left out of the OpenAPI schema).

Every answer carries a Content-Security-Policy that allows nothing from another host: scripts,
styles and images come from the route itself, and the chat may open WebSockets only to the
nodes the route knows when it serves the page (the page reloads itself if it is sent to a node
that joined later, see ``chat.js``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from cim_route.context import Context, Ctx
from shared.errors import ApiError

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
ASSETS = frozenset({"chat.js", "chat.css", "admin.js", "api.js", "icon.svg"})
"""The files under ``/web/``; the two pages are served at their own paths."""
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@functools.cache
def _load(name: str) -> tuple[bytes, str]:
    """The file's bytes and its ETag (read once per process)."""
    data = (importlib.resources.files("cim_route") / "web" / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def _policy(ctx: Context | None) -> str:
    """``default-src 'self'``; with ``ctx`` (the chat) also the WebSocket origins of the nodes."""
    sockets = ""
    if ctx is not None:
        urls = sorted({url.rsplit("/", 1)[0] for n in ctx.view.listed() if (url := n.ws_url)})
        sockets = "".join(" " + url for url in urls)
    return (
        "default-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{sockets}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def _page(name: str, policy: str) -> Response:
    """A page: never cached, since its policy names the nodes of the moment."""
    headers = {**_HEADERS, "Cache-Control": "no-store", "Content-Security-Policy": policy}
    return Response(_load(name)[0], media_type=_TYPES[".html"], headers=headers)


@router.get("/")
async def chat_page(ctx: Ctx) -> Response:
    """The web chat (its CSP names the nodes' WebSocket origins: the view must be loaded)."""
    await ctx.view.loaded()
    return _page("index.html", _policy(ctx))


@router.get("/admin")
async def admin_page() -> Response:
    """The operator page."""
    return _page("admin.html", _policy(None))


IfNoneMatch = Annotated[str | None, Header()]


@router.get("/web/{name}")
async def asset(name: Annotated[str, Path(max_length=64)], if_none_match: IfNoneMatch = None) -> Response:
    """A script, the style sheet or the icon; 404 ``not_found`` for any other name."""
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no such file: {name}")
    data, etag = _load(name)
    headers = {**_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=_TYPES[name[name.rfind(".") :]], headers=headers)
