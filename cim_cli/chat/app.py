"""``cim chat``: the terminal client, put together.

The parts: :mod:`~cim_cli.chat.login` (the dialogue before the chat),
:mod:`~cim_cli.chat.screen` (the prompt-toolkit application), which parses
lines with :mod:`~cim_cli.chat.commands` and runs them with
:mod:`~cim_cli.chat.actions`, completes with :mod:`~cim_cli.chat.completion`,
prints with :mod:`~cim_cli.chat.formatting`; what is remembered between runs
is :mod:`~cim_cli.chat.profile`, the session itself is :class:`cim_client.Client`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path

from cim_cli.chat.login import LoginDialog
from cim_cli.chat.profile import Profile
from cim_cli.chat.screen import ChatScreen
from shared.settings import DEFAULT_ROUTE_URL

__all__ = ["host_device", "run_chat"]


def host_device() -> str:
    """The host name as a device name: 1-32 of ``A-Z a-z 0-9 _ . -`` (else ``default``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0])[:32]
    return name or "default"


def run_chat(
    route_url: str | None,
    username: str | None,
    *,
    device: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """Run the chat until the user quits; the process exit code (0: a normal quit). ``device``:
    this device's name (default: the host name, cut to the name rules)."""
    profile = Profile.default(environ)
    _log_to_file(profile.data_dir / "chat.log")
    remembered = profile.remembered()
    route = route_url or environ.get("CIM_ROUTE_URL") or remembered.route_url or DEFAULT_ROUTE_URL
    route = route.rstrip("/")
    user = username or remembered.username
    try:
        password = environ.get("CIM_PASSWORD") or None
        return asyncio.run(_main(profile, route, user, password, device or host_device()))
    except (KeyboardInterrupt, EOFError):
        return 0


async def _main(profile: Profile, route: str, username: str | None, password: str | None, device: str) -> int:
    screen = ChatScreen(profile, route, device)
    login = LoginDialog(profile, route, username, password, screen.make_client, device=device)
    client = await login.run()
    if client is None:
        return 1
    return await screen.run(client, login.ask_password)


def _log_to_file(path: Path) -> None:
    """Logs go to a file: a line on stderr would tear through the prompt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
