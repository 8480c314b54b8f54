"""The chat screen: the prompt-toolkit application that runs once the login is done.

Incoming messages are printed above the prompt (``print_formatted_text`` runs
them "in terminal" while the prompt is active, and ``patch_stdout`` catches
anything else), so a half-typed line is never broken. The bottom toolbar shows
who I am, the node, the connection state, the current target and who is typing to
me. A carbon of a send from this device is not printed again (the send echoed it);
one from my other devices shows as ``you → bob (from phone)``; a receipt prints
"✓ read by bob"; read and typing notes go out through ``cim_cli.chat.signals``. What a line
means is :mod:`cim_cli.chat.commands`; what it does is :mod:`cim_cli.chat.actions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout

from cim_cli.chat.actions import Actions, note_peer
from cim_cli.chat.commands import CommandError, Target, parse, valid_name
from cim_cli.chat.completion import ChatCompleter, Roster
from cim_cli.chat.formatting import STYLE, format_message, kick_text, receipt_line, say, show
from cim_cli.chat.mine import MyMessages
from cim_cli.chat.profile import Profile
from cim_cli.chat.signals import Signals
from cim_client import CimError, Client, ConnectionState, Message, retryable
from shared.protocol import KickReason, MessageKind

__all__ = ["ChatScreen"]

log = logging.getLogger(__name__)

ONLINE_REFRESH_S = 3.0
GROUPS_REFRESH_S = 15.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_TOKEN_REFUSED = frozenset({"unauthorized", "bad_token"})
"""``close_reason`` of an SDK session whose token the route or the node refused."""


class _Interrupt(Exception):
    """Raised out of the running prompt when the session needs attention (see the flags)."""


class ChatScreen:
    """The running chat: prompt, toolbar, printing, the SDK's callbacks."""

    def __init__(self, profile: Profile, route: str, device: str = "default") -> None:
        self.profile = profile
        self.route = route
        self.device = device
        self._client: Client | None = None
        self._actions: Actions | None = None
        self._mine: MyMessages | None = None
        self._signals: Signals | None = None
        self.me = ""
        self.roster = Roster()
        self._ask_password: Callable[[str], Awaitable[str]] | None = None
        self._peers = profile.peers()
        self._state = ConnectionState.CLOSED
        self._retry_at: float | None = None
        self._quitting = False
        self._ended: str | None = None
        self._password_wanted = False
        self._reconnecting_by_hand = False
        self._stop_requested = False
        self._session: PromptSession[str] = PromptSession(
            history=FileHistory(str(profile.history_path)),
            completer=ChatCompleter(self.roster),
            complete_while_typing=False,
            bottom_toolbar=self._toolbar,
            style=STYLE,
            refresh_interval=0.5,
        )
        self._session.default_buffer.on_text_changed += self._on_draft

    @property
    def client(self) -> Client:
        """The session (set by ``run``)."""
        assert self._client is not None, "run() sets the client"
        return self._client

    @property
    def target(self) -> Target | None:
        """Where plain text goes (``:to``)."""
        return self._actions.target if self._actions else None

    def make_client(self, username: str, password: str | None = None, **kwargs: Any) -> Client:
        """A client whose messages and state changes come to this screen (the login uses it)."""
        self.me = username
        return Client(
            self.route,
            username,
            password,
            on_message=self._on_message,
            on_state=self._on_state,
            on_kick=self._on_kick,
            device=self.device,
            **kwargs,
        )

    async def run(self, client: Client, ask_password: Callable[[str], Awaitable[str]]) -> int:
        """Prompt until quit; close the session (``bye``) whatever happens."""
        self._client, self._ask_password = client, ask_password
        self._mine = MyMessages(client.username, client.device)
        self._signals = Signals(client)
        self._signals.start()
        self._actions = Actions(client, self.route, self.roster, self._peers, self._mine)
        refresher = asyncio.create_task(self._refresh_roster(), name="cim-chat-roster")
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stop)
        try:
            with patch_stdout(raw=True):
                node = client.node.id if client.node else "?"
                say("good", f"connected as {self.me} to node {node} -- :help lists the commands")
                return await self._loop(self._actions)
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            self._quitting = True
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await self._signals.stop()
            await client.close()
            self.profile.save_peers(self._peers)

    async def _loop(self, actions: Actions) -> int:
        draft = ""
        while not (self._stop_requested or actions.quit):
            if self._password_wanted:
                await self._get_password()
            if self._ended is not None:
                say("error", self._ended)
                return 1
            try:
                line = await self._session.prompt_async(self._prompt, default=draft)
            except (EOFError, KeyboardInterrupt):
                return 0
            except _Interrupt:
                draft = self._session.default_buffer.text
                continue
            draft = ""
            try:
                command = parse(line)
            except CommandError as exc:
                say("error", str(exc))
                continue
            if command is not None:
                await actions.run(command)
        return 0

    async def _get_password(self) -> None:
        """The token was refused: ask for the password and open the session again with it."""
        assert self._ask_password is not None
        self._password_wanted = False
        try:
            self.client.password = await self._ask_password("the token is no longer valid")
            await self._connect_again()
        except (EOFError, KeyboardInterrupt):
            self._ended = "no password, no connection"
        except (CimError, OSError, httpx.HTTPError) as exc:
            self._ended = f"cannot log in again: {exc}"
        else:
            node = self.client.node.id if self.client.node else "?"
            say("good", f"reconnected to node {node}")

    async def _connect_again(self, attempts: int = 8) -> None:
        """Open the session anew, retrying what a retry can fix (a node that just died is
        handed out until the registry drops it) with a growing pause."""
        self._reconnecting_by_hand = True
        try:
            for attempt in range(attempts):
                try:
                    await self.client.connect()
                    return
                except Exception as exc:
                    if not retryable(exc) or attempt == attempts - 1:
                        raise
                    await asyncio.sleep(min(5.0, 0.25 * 2**attempt))
        finally:
            self._reconnecting_by_hand = False

    def _closing_ends_chat(self) -> bool:
        """Whether a ``closed`` session ends the chat (not on quit, nor between our own retries)."""
        return not (self._quitting or self._reconnecting_by_hand or self._ended is not None)

    # ----- SDK callbacks ------------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        signals, mine = self._signals, self._mine
        if signals is None or mine is None:  # messages before run(): the login's replay
            show(format_message(msg, self.me))
            return
        if msg.kind == MessageKind.TYPING:
            signals.typing_from(msg)
            self._session.app.invalidate()
            return
        if msg.kind == MessageKind.RECEIPT:
            if not msg.carbon and msg.sender != self.me:  # my other device's reads: no news
                show(receipt_line(msg))
            return
        if mine.seen(msg):  # the carbon of a send from here: echoed when sent
            return
        if msg.kind == MessageKind.P2P and msg.sender != self.me:
            note_peer(self._peers, msg.sender)
        signals.stopped_typing(msg)
        show(format_message(msg, self.me))
        signals.shown(msg)

    def _on_draft(self, buffer: Any) -> None:
        """The draft changed: if it is a message to someone, tell them I am typing."""
        if self._signals is None:
            return
        to, group = _draft_target(buffer.text, self.target)
        if to is not None or group is not None:
            self._signals.typing(to, group)

    def _on_state(self, state: ConnectionState, delay: float | None) -> None:
        previous, self._state = self._state, state
        if state is ConnectionState.RECONNECTING:
            self._retry_at = time.monotonic() + (delay or 0.0)
            if previous is ConnectionState.READY:
                say("warn", f"connection lost; reconnecting in {delay or 0:.1f} s")
        elif state is ConnectionState.READY and previous is ConnectionState.RECONNECTING:
            node = self._client.node.id if self._client and self._client.node else "?"
            say("good", f"reconnected to node {node}")
        elif state is ConnectionState.CLOSED and self._client and self._closing_ends_chat():
            if self.client.password is None and self.client.close_reason in _TOKEN_REFUSED:
                self._password_wanted = True  # the cached token expired or was revoked
            else:
                self._ended = f"session closed: {self.client.close_reason or 'by the server'}"
            self._exit_prompt()
        self._session.app.invalidate()

    def _on_kick(self, reason: str) -> None:
        self._ended = kick_text(reason)
        if reason in (KickReason.LOGOUT, KickReason.REVOKED):
            self.profile.forget_token(self.route, f"{self.me}/{self.device}")
        self._exit_prompt()

    def _stop(self) -> None:
        """SIGTERM or SIGHUP (the terminal went away): quit as :q! does, saying bye."""
        self._stop_requested = True
        self._exit_prompt()

    def _exit_prompt(self) -> None:
        """Leave the running prompt (keeping the draft) so that the loop looks at the flags."""
        app = self._session.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=_Interrupt())

    # ----- prompt and toolbar -------------------------------------------------------

    def _prompt(self) -> FormattedText:
        where = str(self.target) if self.target else "all"
        return FormattedText([("class:me", f"{where}"), ("", "> ")])

    def _toolbar(self) -> FormattedText:
        node = self.client.node.id if self.client.node else "-"
        if self._state is ConnectionState.READY:
            state = ("class:bottom-toolbar.ok", "connected")
        elif self._state is ConnectionState.RECONNECTING:
            left = max(0.0, (self._retry_at or 0.0) - time.monotonic())
            state = (
                "class:bottom-toolbar.bad",
                f"reconnecting in {left:.0f} s" if left >= 0.5 else "reconnecting",
            )
        else:
            state = ("class:bottom-toolbar.bad", str(self._state))
        target = str(self.target) if self.target else "everyone"
        typing = self._signals.who_types() if self._signals else []
        parts = [("", f" {self.me} @ {node} | "), state, ("", f" | to: {target} | :help  Tab completes ")]
        if typing:
            parts.append(
                ("class:bottom-toolbar.ok", f"| {', '.join(typing)} {_is_are(typing)} typing\u2026 ")
            )
        return FormattedText(parts)

    # ----- background ---------------------------------------------------------------

    async def _refresh_roster(self) -> None:
        """Online users every few seconds and my groups now and then, for completion."""
        next_groups = 0.0
        while True:
            try:
                users, _ = await self.client.online(limit=1000)
                self.roster.users[:] = [u for u in users if u != self.me]
                if time.monotonic() >= next_groups:
                    self.roster.groups[:] = [g["name"] for g in await self.client.groups()]
                    next_groups = time.monotonic() + GROUPS_REFRESH_S
            except (CimError, httpx.HTTPError, OSError, KeyError) as exc:
                log.debug("roster refresh failed: %s", exc)
            await asyncio.sleep(ONLINE_REFRESH_S)


def _is_are(who: list[str]) -> str:
    return "is" if len(who) == 1 else "are"


def _draft_target(text: str, target: Target | None) -> tuple[str | None, str | None]:
    """(user, group) a draft line is a message to, if it is one: ``@bob ..``, ``bob;;..``,
    ``#dev ..``, or plain text with a ``:to`` target. Commands and empty drafts are none."""
    if not text.strip() or (text.startswith(":") and not text.startswith("::")):
        return None, None
    first = text.split(maxsplit=1)[0]
    if first.startswith("@") and valid_name(first[1:]):
        return first[1:], None
    if first.startswith("#") and valid_name(first[1:]):
        return None, first[1:]
    head, sep, _ = text.partition(";;")
    if sep and valid_name(head):
        return head, None
    if target is None:
        return None, None
    return (None, target.name) if target.group else (target.name, None)
