"""What the chat tells the others besides messages: "read" for what it showed, "typing" while
a message is typed; and who is typing to me, for the toolbar.

Read: each message shown from someone else (p2p or group) moves my read cursor of that
conversation to its ``ts`` (``POST /read``) -- the chat cannot know whether the terminal has
focus, so "shown" is what counts. Typing: at most one ``POST /typing`` a second while the draft
is a message to someone. Both go out from one owned task; what waits is at most one note per
kind and conversation, the latest (a later read covers an earlier one, so a replay of many
messages costs one call per conversation), and the prompt never waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from cim_client import CimError, Client, Message
from shared.protocol import MessageKind

__all__ = ["TYPING_SHOWN_S", "Signals"]

log = logging.getLogger(__name__)

TYPING_SHOWN_S = 4.0
"""How long "bob is typing…" stays in the toolbar after bob's last typing note."""
TYPING_EVERY_S = 1.0


class Signals:
    """The outgoing read and typing notes of one chat, and the incoming typing ones."""

    def __init__(self, client: Client, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._pending: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {}
        """(kind, conversation) -> the latest note of that kind for it, not sent yet."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._typing_to: dict[str, float] = {}
        self._typing_from: dict[str, float] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cim-chat-signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ----- out ----------------------------------------------------------------------

    def shown(self, msg: Message) -> None:
        """A message from someone else was shown: mark its conversation read up to it."""
        if msg.carbon or msg.sender == self._client.username:
            return
        if msg.kind == MessageKind.P2P:
            self._put(("read", msg.sender), lambda: self._client.read(with_user=msg.sender, ts=msg.ts))
        elif msg.kind == MessageKind.GROUP and msg.group:
            group = msg.group
            self._put(("read", f"#{group}"), lambda: self._client.read(group=group, ts=msg.ts))

    def typing(self, to: str | None, group: str | None) -> None:
        """The draft is a message to ``to`` (or ``group``): say so, once a second at most."""
        key = f"#{group}" if group else to
        if key is None:
            return
        now = self._clock()
        if now - self._typing_to.get(key, float("-inf")) < TYPING_EVERY_S:
            return
        self._typing_to[key] = now
        self._put(("typing", key), lambda: self._client.typing(to=to, group=group))

    def _put(self, key: tuple[str, str], call: Callable[[], Awaitable[None]]) -> None:
        self._pending[key] = call
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = next(iter(self._pending))
                call = self._pending.pop(key)
                try:
                    await call()
                except (CimError, httpx.HTTPError, OSError) as exc:
                    log.debug("%s note for %s failed: %s", key[0], key[1], exc)

    # ----- in -----------------------------------------------------------------------

    def typing_from(self, msg: Message) -> None:
        """Someone's typing note came: show it for ``TYPING_SHOWN_S``."""
        who = f"{msg.sender} in #{msg.group}" if msg.group else msg.sender
        self._typing_from[who] = self._clock() + TYPING_SHOWN_S

    def who_types(self) -> list[str]:
        """Who is typing to me now (for the toolbar)."""
        now = self._clock()
        for who in [w for w, until in self._typing_from.items() if until <= now]:
            del self._typing_from[who]
        return sorted(self._typing_from)

    def stopped_typing(self, msg: Message) -> None:
        """A message from someone ends their typing note."""
        self._typing_from.pop(f"{msg.sender} in #{msg.group}" if msg.group else msg.sender, None)
