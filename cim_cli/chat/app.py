"""``cim chat``: the prompt-toolkit terminal client.

This module is only the screen: what a line means is :mod:`cim_cli.chat.commands`,
the session (login, reconnect, dedupe) is :class:`cim_client.Client`, and what
is remembered between runs is :mod:`cim_cli.chat.profile`.

Incoming messages are printed above the prompt (``print_formatted_text`` runs
them "in terminal" while the prompt is active, and ``patch_stdout`` catches
anything else), so a half-typed line is never broken. The bottom toolbar shows
who I am, the node, the connection state and the current target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.styles import Style

from cim_cli.chat import emoji
from cim_cli.chat.commands import (
    Broadcast,
    Command,
    CommandError,
    Delay,
    EmojiPage,
    GroupCreate,
    GroupList,
    GroupMembers,
    Help,
    History,
    Info,
    Online,
    Quit,
    Say,
    Search,
    SendTo,
    SetTarget,
    Target,
    complete,
    help_lines,
    parse,
    resolve,
    valid_name,
)
from cim_cli.chat.profile import CachedLogin, Profile
from cim_client import CimApiError, Client, ConnectionState, Message, NodeAddress, retryable
from shared.errors import CimError
from shared.settings import DEFAULT_ROUTE_URL

__all__ = ["format_message", "run_chat"]

log = logging.getLogger(__name__)

ONLINE_REFRESH_S = 3.0
GROUPS_REFRESH_S = 15.0
COMMAND_TIMEOUT_S = 30.0
HISTORY_LIMIT = 20
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
SEARCH_FANOUT = 8
"""Concurrent history calls of a search across all my conversations."""

STYLE = Style.from_dict(
    {
        "time": "ansibrightblack",
        "p2p": "ansicyan bold",
        "group": "ansigreen bold",
        "broadcast": "ansimagenta bold",
        "push": "ansiyellow bold",
        "system": "ansibrightblack italic",
        "me": "ansiblue bold",
        "status": "ansibrightblack",
        "error": "ansired",
        "info": "ansibrightblack",
        "good": "ansigreen",
        "warn": "ansiyellow",
        "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
        "bottom-toolbar.ok": "bg:#303030 ansigreen",
        "bottom-toolbar.bad": "bg:#303030 ansiyellow",
    }
)
_TOKEN_REFUSED = frozenset({"unauthorized", "bad_token"})
"""``close_reason`` of an SDK session whose token the route or the node refused."""

_KICK_TEXT = {
    "duplicate_login": "you logged in somewhere else; this session ends",
    "logout": "you logged out; this session ends",
    "revoked": "an operator ended this session",
}
_API_HINTS = {
    "rate_limited": "sending too fast, slow down",
    "unknown_user": "no such user",
    "unknown_group": "no such group (or you are not in it)",
    "too_large": "the message is too long",
}


def run_chat(route_url: str | None, username: str | None, *, environ: Mapping[str, str] = os.environ) -> int:
    """Run the chat until the user quits; the process exit code (0: a normal quit)."""
    profile = Profile.default(environ)
    _log_to_file(profile.data_dir / "chat.log")
    remembered = profile.remembered()
    route = route_url or environ.get("CIM_ROUTE_URL") or remembered.route_url or DEFAULT_ROUTE_URL
    route = route.rstrip("/")
    user = username or remembered.username
    try:
        return asyncio.run(_main(profile, route, user, environ.get("CIM_PASSWORD") or None))
    except (KeyboardInterrupt, EOFError):
        return 0


async def _main(profile: Profile, route: str, username: str | None, password: str | None) -> int:
    screen = ChatScreen(profile, route)
    login = _Login(profile, route, username, password, screen.make_client)
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


# ----- formatting ------------------------------------------------------------------


def _clock(ts_ms: int, now: datetime | None = None) -> str:
    """Local HH:MM, with the date in front when it is not today."""
    when = datetime.fromtimestamp(ts_ms / 1000)
    now = now or datetime.now()
    return when.strftime("%H:%M") if when.date() == now.date() else when.strftime("%a %d %b %H:%M")


def format_message(msg: Message, me: str, now: datetime | None = None) -> FormattedText:
    """One message as a styled line: time, where it came from, body."""
    parts: list[tuple[str, str]] = [("class:time", _clock(msg.ts, now) + " ")]
    if msg.sender == me:
        where = f"#{msg.group}" if msg.group else msg.to
        parts.append(("class:me", f"you \u2192 {where}: "))
    elif msg.kind == "group":
        parts += [("class:group", f"#{msg.group} "), ("class:p2p", f"{msg.sender}: ")]
    elif msg.kind == "broadcast":
        parts.append(("class:broadcast", f"(all) {msg.sender}: "))
    elif msg.kind == "push":
        parts.append(("class:push", f"push{f' from {msg.sender}' if msg.sender else ''}: "))
    elif msg.kind == "system":
        parts.append(("class:system", "system: "))
    else:
        parts.append(("class:p2p", f"{msg.sender}: "))
    parts.append(("class:system" if msg.kind == "system" else "", msg.body))
    return FormattedText(parts)


def _sent_line(where: str, body: str, status: str) -> FormattedText:
    """The echo of my own message with what the route said about it."""
    return FormattedText(
        [
            ("class:time", _clock(int(time.time() * 1000)) + " "),
            ("class:me", f"you \u2192 {where}: "),
            ("", body),
            ("class:status", f"  ({status})"),
        ]
    )


def _api_error_text(exc: CimApiError) -> str:
    hint = _API_HINTS.get(exc.code)
    detail = f"{hint}: {exc.detail}" if hint and exc.detail and exc.detail != hint else (hint or exc.detail)
    return f"{exc.code} ({exc.status}): {detail}" if detail else f"{exc.code} ({exc.status})"


def _say(style: str, text: str) -> None:
    print_formatted_text(FormattedText([(f"class:{style}", text)]), style=STYLE)


# ----- login --------------------------------------------------------------------


class _Login:
    """Before the chat: username, password (or a cached token), register on request."""

    def __init__(
        self,
        profile: Profile,
        route: str,
        username: str | None,
        password: str | None,
        make_client: Callable[..., Client],
    ) -> None:
        self.profile = profile
        self._make_client = make_client
        self.route = route
        self.username = username
        self.password = password
        self._password_from_env = password is not None
        self._session: PromptSession[str] = PromptSession()

    async def run(self) -> Client | None:
        """A connected client, or ``None`` (the reason was printed)."""
        try:
            self.username = self.username or await self._ask_username()
            client = await self._from_cache() if self.password is None else None
            if client is None:
                client = await self._with_password()
        except (CimApiError, CimError, OSError, httpx.HTTPError) as exc:
            _say("error", f"cannot log in to {self.route}: {_error_text(exc)}")
            return None
        if client is not None:
            self.profile.remember(self.route, client.username)
        return client

    async def ask_password(self, why: str) -> str:
        """Ask for the password (in the middle of a chat too); Ctrl-C/D raise."""
        _say("warn", why)
        return await self._session.prompt_async(f"password for {self.username}: ", is_password=True)

    async def _ask_username(self) -> str:
        while True:
            name = (await self._session.prompt_async("username: ")).strip()
            if valid_name(name):
                return name
            _say("error", "a username is 1-32 of letters, digits, _ . -")

    async def _from_cache(self) -> Client | None:
        """Reuse a remembered token: no password needed while it is valid."""
        assert self.username
        cached = self.profile.cached_login(self.route, self.username)
        if cached is None or cached.node is None:
            return None
        try:
            node = NodeAddress.from_wire(cached.node)
        except (KeyError, TypeError, ValueError):
            return None
        client = self._make_client(self.username, token=cached.token, node=node)
        try:
            await client.connect()
        except (CimError, OSError, httpx.HTTPError) as exc:
            log.info("cached token not usable: %s", exc)
            await client.close()
            if getattr(exc, "code", "") in ("bad_token", "revoked", "logout"):
                self.profile.forget_token(self.route, self.username)
            return None
        return client

    async def _with_password(self) -> Client | None:
        assert self.username
        for _ in range(3):
            if self.password is None:
                self.password = await self._session.prompt_async(
                    f"password for {self.username}: ", is_password=True
                )
            client = self._make_client(self.username, self.password)
            try:
                if await self._login_or_register(client):
                    await client.connect()
                    return client
            except BaseException:
                await client.close()
                raise
            await client.close()
            if self._password_from_env:
                return None
            self.password = None
        _say("error", "giving up after three tries")
        return None

    async def _login_or_register(self, client: Client) -> bool:
        """Log in; on ``bad_credentials`` offer to register. False: try another password."""
        try:
            answer = await client.login()
        except CimApiError as exc:
            if exc.code != "bad_credentials":
                raise
            answer = await self._offer_register(client)
            if answer is None:
                return False
        self.profile.save_login(
            self.route,
            client.username,
            CachedLogin(answer["token"], int(answer["expires_at"]), answer["node"]),
        )
        return True

    async def _offer_register(self, client: Client) -> dict[str, Any] | None:
        question = f"login refused: is {client.username!r} new here? register it now? [y/N] "
        reply = (await self._session.prompt_async(question)).strip().lower()
        if reply not in ("y", "yes"):
            _say("error", "wrong username or password")
            return None
        try:
            await client.register()
        except CimApiError as exc:
            if exc.code == "username_taken":
                _say("error", f"{client.username!r} is taken by someone else, or the password is wrong")
                return None
            if exc.code == "invalid_request":
                _say("error", f"cannot register: {exc.detail} (a password has 8-128 characters)")
                return None
            raise
        _say("good", f"registered {client.username!r}")
        return await client.login()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, CimApiError):
        return _api_error_text(exc)
    if isinstance(exc, httpx.HTTPError | OSError):
        return f"cannot reach it ({type(exc).__name__}: {exc})"
    return str(exc)


# ----- the chat screen ----------------------------------------------------------


@dataclass
class _Roster:
    """What completion offers: users online now and my groups, refreshed in the background."""

    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


class _ChatCompleter(Completer):
    def __init__(self, roster: _Roster) -> None:
        self._roster = roster

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        for s in complete(document.text_before_cursor, self._roster.users, self._roster.groups):
            yield Completion(s.text, start_position=-s.replace, display_meta=s.meta or None)


class _Interrupt(Exception):
    """Raised out of the running prompt when the session needs attention (see the flags)."""


class ChatScreen:
    """The running chat: prompt, toolbar, printing, command execution."""

    def __init__(self, profile: Profile, route: str) -> None:
        self.profile = profile
        self.route = route
        self._client: Client | None = None
        self.me = ""
        self.target: Target | None = None
        self.roster = _Roster()
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
            completer=_ChatCompleter(self.roster),
            complete_while_typing=False,
            bottom_toolbar=self._toolbar,
            style=STYLE,
            refresh_interval=0.5,
        )

    @property
    def client(self) -> Client:
        """The session (set by ``run``)."""
        assert self._client is not None, "run() sets the client"
        return self._client

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
            **kwargs,
        )

    async def run(self, client: Client, ask_password: Callable[[str], Awaitable[str]]) -> int:
        """Prompt until quit; close the session (``bye``) whatever happens."""
        self._client, self._ask_password = client, ask_password
        refresher = asyncio.create_task(self._refresh_roster(), name="cim-chat-roster")
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stop)
        try:
            with patch_stdout(raw=True):
                node = client.node.id if client.node else "?"
                _say("good", f"connected as {self.me} to node {node} -- :help lists the commands")
                return await self._loop()
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
            self._quitting = True
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await client.close()
            self.profile.save_peers(self._peers)

    async def _loop(self) -> int:
        draft = ""
        while not self._stop_requested:
            if self._password_wanted:
                await self._get_password()
            if self._ended is not None:
                _say("error", self._ended)
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
                _say("error", str(exc))
                continue
            if isinstance(command, Quit):
                return 0
            if command is not None:
                await self._execute(command)
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
            _say("good", f"reconnected to node {node}")

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
        if msg.kind == "p2p" and msg.sender != self.me:
            self._note_peer(msg.sender)
        print_formatted_text(format_message(msg, self.me), style=STYLE)

    def _on_state(self, state: ConnectionState, delay: float | None) -> None:
        previous, self._state = self._state, state
        if state is ConnectionState.RECONNECTING:
            self._retry_at = time.monotonic() + (delay or 0.0)
            if previous is ConnectionState.READY:
                _say("warn", f"connection lost; reconnecting in {delay or 0:.1f} s")
        elif state is ConnectionState.READY and previous is ConnectionState.RECONNECTING:
            node = self._client.node.id if self._client and self._client.node else "?"
            _say("good", f"reconnected to node {node}")
        elif state is ConnectionState.CLOSED and self._client and self._closing_ends_chat():
            if self.client.password is None and self.client.close_reason in _TOKEN_REFUSED:
                self._password_wanted = True  # the cached token expired or was revoked
            else:
                self._ended = f"session closed: {self.client.close_reason or 'by the server'}"
            self._exit_prompt()
        self._session.app.invalidate()

    def _on_kick(self, reason: str) -> None:
        self._ended = _KICK_TEXT.get(reason, f"kicked: {reason}")
        if reason in ("logout", "revoked"):
            self.profile.forget_token(self.route, self.me)
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
        return FormattedText(
            [("", f" {self.me} @ {node} | "), state, ("", f" | to: {target} | :help  Tab completes ")]
        )

    # ----- commands -----------------------------------------------------------------

    async def _execute(self, command: Command) -> None:
        """Run one command; every failure becomes one red line."""
        try:
            await asyncio.wait_for(self._dispatch(command), COMMAND_TIMEOUT_S)
        except CimApiError as exc:
            _say("error", _api_error_text(exc))
        except CommandError as exc:
            _say("error", str(exc))
        except TimeoutError:
            _say("error", f"no answer from {self.route} within {COMMAND_TIMEOUT_S:.0f} s")
        except (httpx.HTTPError, OSError) as exc:
            _say("error", f"route {self.route} unreachable: {exc}")
        except CimError as exc:
            _say("error", str(exc))
        except Exception as exc:  # a bug must not kill the chat
            log.exception("command %r failed", command)
            _say("error", f"internal error: {exc!r} (details in the chat log)")

    async def _dispatch(self, command: Command) -> None:
        match command:
            case Say():
                await self._send(resolve(command, self.target))
            case SendTo() | Broadcast():
                await self._send(command)
            case Delay(target=target, body=body):
                await self._send(SendTo(target, body), delay_ms=command.delay_ms)
            case SetTarget(target=target):
                self.target = target
                _say(
                    "info",
                    f"plain text now goes to {target}" if target else "plain text now goes to everyone",
                )
            case GroupCreate(name=name, members=members):
                self._show_group("created", await self.client.create_group(name, list(members)))
            case GroupMembers(name=name, add=add, remove=remove):
                self._show_group("updated", await self.client.update_group(name, add, remove))
            case GroupList():
                await self._list_groups()
            case History(target=target):
                await self._history(target)
            case Search(keyword=keyword, target=target):
                await self._search(keyword, target)
            case EmojiPage(page=page):
                self._emoji(page)
            case Online(prefix=prefix):
                await self._online(prefix)
            case Info():
                self._info()
            case Help():
                self._help()

    async def _send(self, command: SendTo | Broadcast, delay_ms: int | None = None) -> None:
        if isinstance(command, Broadcast):
            count = await self.client.broadcast(command.body)
            print_formatted_text(_sent_line("everyone", command.body, f"{count} online"), style=STYLE)
            return
        target, body = command.target, command.body
        if target.group:
            answer = await self.client.send_group(target.name, body, delay_ms=delay_ms)
            count = int(answer.get("recipients", 0))
            status = _scheduled(answer.get("due")) if delay_ms else f"{count} recipient{'s' * (count != 1)}"
        else:
            result = await self.client.send(target.name, body, delay_ms=delay_ms)
            status = _scheduled(result.due) if result.status == "scheduled" else result.status
            self._note_peer(target.name)
        print_formatted_text(_sent_line(str(target), body, status), style=STYLE)

    def _show_group(self, verb: str, group: dict[str, Any]) -> None:
        name = str(group["name"])
        if name not in self.roster.groups:
            self.roster.groups.append(name)
        _say("good", f"{verb} #{name}: {', '.join(group.get('members', []))}")

    async def _list_groups(self) -> None:
        groups = await self.client.groups()
        self.roster.groups[:] = [g["name"] for g in groups]
        if not groups:
            _say("info", "no groups yet: :g create NAME USER.. makes one")
        for g in groups:
            _say("info", f"#{g['name']}: {', '.join(g.get('members', []))}")

    def _require_target(self, target: Target | None, usage: str) -> Target:
        target = target or self.target
        if target is None:
            raise CommandError(f"whose history? {usage} (or set one with :to)")
        return target

    async def _history(self, target: Target | None) -> None:
        target = self._require_target(target, ":h user|#group")
        messages = await self._read_history(target, None, HISTORY_LIMIT)
        self._show_found(f"history with {target}", messages)

    async def _search(self, keyword: str, target: Target | None) -> None:
        target = target or self.target
        if target is not None:
            found = await self._read_history(target, keyword, HISTORY_LIMIT)
            self._show_found(f"{keyword!r} with {target}", found)
            return
        targets = await self._all_conversations()
        limit = asyncio.Semaphore(SEARCH_FANOUT)

        async def one(t: Target) -> list[Message]:
            async with limit:
                try:
                    return await self._read_history(t, keyword, HISTORY_LIMIT)
                except CimApiError:
                    return []  # a group I left, a user that is gone

        results = await asyncio.gather(*(one(t) for t in targets))
        merged = sorted((m for ms in results for m in ms), key=lambda m: m.ts, reverse=True)
        title = f"{keyword!r} in {len(targets)} conversations (my groups and the people I talked with)"
        self._show_found(title, merged[:HISTORY_LIMIT])

    async def _all_conversations(self) -> list[Target]:
        groups = [g["name"] for g in await self.client.groups()]
        self.roster.groups[:] = groups
        return [*(Target(g, group=True) for g in groups), *(Target(p) for p in self._peers)]

    async def _read_history(self, target: Target, q: str | None, limit: int) -> list[Message]:
        if target.group:
            return await self.client.history(group=target.name, q=q, limit=limit)
        return await self.client.history(with_user=target.name, q=q, limit=limit)

    def _show_found(self, title: str, newest_first: list[Message]) -> None:
        if not newest_first:
            _say("info", f"-- {title}: nothing --")
            return
        _say("info", f"-- {title}: {len(newest_first)} --")
        for msg in reversed(newest_first):
            print_formatted_text(format_message(msg, self.me), style=STYLE)
        _say("info", "-- end --")

    def _emoji(self, page: int) -> None:
        count = emoji.page_count()
        items = emoji.page(page)
        if not items:
            raise CommandError(f"there are {count} emoji pages")
        _say("info", f"emoji page {page}/{count} (type :alias: in a message):")
        for i in range(0, len(items), 4):
            row = "  ".join(f"{e} :{a}:".ljust(22) for a, e in items[i : i + 4])
            _say("", "  " + row.rstrip())

    async def _online(self, prefix: str) -> None:
        users, total = await self.client.online(prefix=prefix, limit=100)
        if not prefix:
            self.roster.users[:] = [u for u in users if u != self.me]
        what = f"online users starting with {prefix!r}" if prefix else "online users"
        more = f" (and {total - len(users)} more)" if total > len(users) else ""
        _say("info", f"{total} {what}: {', '.join(sorted(users)) or '-'}{more}")

    def _info(self) -> None:
        node = self.client.node
        where = f"{node.id} ({node.host}:{node.port})" if node else "-"
        lines = [
            f"user: {self.me}",
            f"node: {where}",
            f"route: {self.route}",
            f"last seq: {self.client.last_seq}",
            f"connection: {self._state}",
            f"duplicates dropped: {self.client.duplicates_dropped}",
            f"target: {self.target or 'everyone'}",
        ]
        for line in lines:
            _say("info", line)

    def _help(self) -> None:
        width = max(len(usage) for usage, _ in help_lines())
        for usage, description in help_lines():
            print_formatted_text(
                FormattedText([("class:me", "  " + usage.ljust(width + 2)), ("", description)]), style=STYLE
            )

    def _note_peer(self, name: str) -> None:
        if self._peers[-1:] != [name]:
            with contextlib.suppress(ValueError):
                self._peers.remove(name)
            self._peers.append(name)

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


def _scheduled(due: int | None) -> str:
    return f"scheduled for {_clock(due)}" if due else "scheduled"
