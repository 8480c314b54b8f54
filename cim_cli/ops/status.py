"""``cim status`` and ``cim push``: operator commands over the route's API-key calls.

They need the route's URL and an API key. Against the local ``cim up`` neither
has to be given: the URL defaults to where ``cim up`` puts the route, and the
key is read from the data folder where ``cim up`` keeps it -- and so is the CA of
a ``cim up --tls`` (``DATA/tls/ca.pem``), unless ``CIM_TLS_CA`` names one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import httpx

from cim_cli.ops.data_folder import API_KEY_FILE, default_data_dir, read_kept
from cim_client import AdminClient, CimApiError
from shared.settings import DEFAULT_ROUTE_URL, api_keys

__all__ = [
    "NoApiKey",
    "api_key_from",
    "format_nodes",
    "push",
    "route_from",
    "run_admin",
    "status",
    "tls_ca_from",
]


class NoApiKey(Exception):
    """No API key was given and none could be read from the data folder; says what to do."""


def route_from(flag: str | None, environ: Mapping[str, str]) -> str:
    """``--route``, else ``CIM_ROUTE_URL``, else the local default."""
    return flag or environ.get("CIM_ROUTE_URL") or DEFAULT_ROUTE_URL


def api_key_from(flag: str | None, environ: Mapping[str, str], data_dir: Path | None = None) -> str:
    """``--api-key``, else ``CIM_API_KEY``, else the first of ``CIM_API_KEYS``, else the key
    ``cim up`` keeps in ``data_dir`` (default: its default data folder). Raises ``NoApiKey``."""
    given = flag or environ.get("CIM_API_KEY") or next(iter(api_keys(environ)), None)
    if given:
        return given
    path = (data_dir or default_data_dir()) / API_KEY_FILE
    try:
        return read_kept(path)
    except FileNotFoundError:
        problem = f"no API key given and {path} does not exist"
    except (OSError, ValueError) as exc:
        problem = f"no API key given and {path} cannot be read ({exc})"
    raise NoApiKey(
        f"{problem}. Give one with --api-key KEY or CIM_API_KEY, or, for a local `cim up --data DIR`, "
        f"pass --data DIR (cim up keeps its key in DIR/{API_KEY_FILE})"
    )


def tls_ca_from(environ: Mapping[str, str], data_dir: Path | None = None) -> str | None:
    """``CIM_TLS_CA``, else the CA of ``cim up --tls`` in ``data_dir`` (default: its default
    data folder) when there is one, else None (the system store)."""
    if environ.get("CIM_TLS_CA"):
        return environ["CIM_TLS_CA"]
    ca = (data_dir or default_data_dir()) / "tls" / "ca.pem"
    return str(ca) if ca.is_file() else None


def _started(ms: Any) -> str:
    if not isinstance(ms, int | float) or ms <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def format_nodes(nodes: list[dict[str, Any]]) -> list[str]:
    """The node table: id, host:port, state, connections, started."""
    header = ("NODE", "ADDRESS", "STATE", "CONNECTIONS", "STARTED")
    rows = [
        (
            str(n.get("id")),
            f"{n.get('host')}:{n.get('port')}",
            str(n.get("state", "")),
            str(n.get("connections", 0)),
            _started(n.get("started_at")),
        )
        for n in sorted(nodes, key=lambda n: str(n.get("id")))
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


async def status(
    route_url: str, api_key: str, out: TextIO = sys.stdout, show_users: int = 50, tls_ca: str | None = None
) -> int:
    """Print the nodes, the connection and online totals and the first online users; 0 on success."""
    async with AdminClient(route_url, api_key, tls_ca=tls_ca) as admin:
        nodes = await admin.nodes()
        users, online = await admin.online(limit=show_users)
    for line in format_nodes(nodes):
        print(line, file=out)
    connections = sum(int(n.get("connections") or 0) for n in nodes)
    print(f"{len(nodes)} node(s), {connections} connection(s), {online} user(s) online", file=out)
    if users:
        more = f" (+{online - len(users)} more)" if online > len(users) else ""
        print(f"online: {', '.join(users)}{more}", file=out)
    return 0


async def push(
    route_url: str, api_key: str, to: str, body: str, out: TextIO = sys.stdout, tls_ca: str | None = None
) -> int:
    """``to``: ``*`` (every online user) or comma-separated usernames."""
    target: list[str] | str = "*" if to.strip() == "*" else [u.strip() for u in to.split(",") if u.strip()]
    if not target:
        raise ValueError("--to needs at least one username, or '*'")
    async with AdminClient(route_url, api_key, tls_ca=tls_ca) as admin:
        answer = await admin.push(target, body)
    print(f"pushed {answer['id']} to {answer['recipients']} recipient(s)", file=out)
    return 0


def run_admin(coro: Any, err: TextIO = sys.stderr) -> int:
    """Run an admin coroutine; turn API and network errors into a message and exit 1."""
    try:
        return asyncio.run(coro)
    except CimApiError as exc:
        print(f"cim: {exc.status} {exc.code}: {exc.detail}", file=err)
    except httpx.TransportError as exc:
        print(f"cim: cannot reach the route: {exc!r}", file=err)
    except ValueError as exc:
        print(f"cim: {exc}", file=err)
    return 1
