"""What each chat command does: one handler per ``Command`` class, registered with ``@_runs``.

``Actions.run`` turns every failure into one red line, so a bad answer or a
dead route never ends the chat. What a handler changes (the current target,
the roster completion offers, the peers ``:q`` searches) the screen shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prompt_toolkit.formatted_text import FormattedText

from cim_cli.chat import emoji
from cim_cli.chat.commands import (
    Broadcast,
    Command,
    CommandError,
    Delay,
    Devices,
    Edit,
    EmojiPage,
    GroupCreate,
    GroupList,
    GroupMembers,
    Help,
    History,
    Info,
    Online,
    Quit,
    Recall,
    Say,
    Search,
    SendTo,
    SetTarget,
    Target,
    help_lines,
    resolve,
)
from cim_cli.chat.completion import Roster
from cim_cli.chat.formatting import api_error_text, format_message, say, scheduled, sent_line, show
from cim_cli.chat.mine import MyMessages
from cim_client import CimApiError, CimError, Client, Message

__all__ = ["COMMAND_TIMEOUT_S", "HANDLERS", "Actions", "note_peer"]

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 30.0
HISTORY_LIMIT = 20
SEARCH_FANOUT = 8
"""Concurrent history calls of a search across all my conversations."""

_Handler = Callable[["Actions", Any], Awaitable[None]]
HANDLERS: dict[type[Command], _Handler] = {}
"""The handler of each command class."""


def _runs(kind: type[Command]) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        HANDLERS[kind] = handler
        return handler

    return register


def note_peer(peers: list[str], name: str) -> None:
    """``name`` is the latest one I had a private conversation with."""
    if peers[-1:] != [name]:
        with contextlib.suppress(ValueError):
            peers.remove(name)
        peers.append(name)


class Actions:
    """Runs the commands of one chat session against its client."""

    def __init__(
        self, client: Client, route: str, roster: Roster, peers: list[str], mine: MyMessages | None = None
    ) -> None:
        self.client = client
        self.route = route
        self.roster = roster
        self.peers = peers
        self.mine = mine if mine is not None else MyMessages(client.username, client.device)
        self.target: Target | None = None
        """Where plain text goes (``:to``); ``None``: everyone online."""
        self.quit = False
        """Set by ``:q!``."""

    @property
    def me(self) -> str:
        return self.client.username

    async def run(self, command: Command) -> None:
        """Run one command; every failure becomes one red line."""
        try:
            await asyncio.wait_for(self._dispatch(command), COMMAND_TIMEOUT_S)
        except CimApiError as exc:
            say("error", api_error_text(exc))
        except CommandError as exc:
            say("error", str(exc))
        except TimeoutError:
            say("error", f"no answer from {self.route} within {COMMAND_TIMEOUT_S:.0f} s")
        except (httpx.HTTPError, OSError) as exc:
            say("error", f"route {self.route} unreachable: {exc}")
        except CimError as exc:
            say("error", str(exc))
        except Exception as exc:  # a bug must not kill the chat
            log.exception("command %r failed", command)
            say("error", f"internal error: {exc!r} (details in the chat log)")

    async def _dispatch(self, command: Command) -> None:
        await HANDLERS[type(command)](self, command)

    # ----- sending --------------------------------------------------------------------

    @_runs(Say)
    async def _say(self, command: Say) -> None:
        await self._dispatch(resolve(command, self.target))

    @_runs(Broadcast)
    async def _broadcast(self, command: Broadcast) -> None:
        count = await self.client.broadcast(command.body)
        show(sent_line("everyone", command.body, f"{count} online"))

    @_runs(SendTo)
    async def _send_to(self, command: SendTo) -> None:
        await self._send(command.target, command.body, None)

    @_runs(Delay)
    async def _delay(self, command: Delay) -> None:
        await self._send(command.target, command.body, command.delay_ms)

    async def _send(self, target: Target, body: str, delay_ms: int | None) -> None:
        if target.group:
            answer = await self.client.send_group(target.name, body, delay_ms=delay_ms)
            self.mine.sent(str(answer["id"]))
            count = int(answer.get("recipients", 0))
            status = scheduled(answer.get("due")) if delay_ms else f"{count} recipient{'s' * (count != 1)}"
        else:
            result = await self.client.send(target.name, body, delay_ms=delay_ms)
            self.mine.sent(result.id)
            status = scheduled(result.due) if result.status == "scheduled" else result.status
            note_peer(self.peers, target.name)
        show(sent_line(str(target), body, status))

    @_runs(SetTarget)
    async def _set_target(self, command: SetTarget) -> None:
        self.target = command.target
        where = command.target or "everyone"
        say("info", f"plain text now goes to {where}")

    # ----- groups ---------------------------------------------------------------------

    @_runs(GroupCreate)
    async def _group_create(self, command: GroupCreate) -> None:
        self._show_group("created", await self.client.create_group(command.name, list(command.members)))

    @_runs(GroupMembers)
    async def _group_members(self, command: GroupMembers) -> None:
        group = await self.client.update_group(command.name, command.add, command.remove)
        self._show_group("updated", group)

    @_runs(GroupList)
    async def _group_list(self, command: GroupList) -> None:
        groups = await self.client.groups()
        self.roster.groups[:] = [g["name"] for g in groups]
        if not groups:
            say("info", "no groups yet: :g create NAME USER.. makes one")
        for g in groups:
            say("info", f"#{g['name']}: {', '.join(g.get('members', []))}")

    def _show_group(self, verb: str, group: dict[str, Any]) -> None:
        name = str(group["name"])
        if name not in self.roster.groups:
            self.roster.groups.append(name)
        say("good", f"{verb} #{name}: {', '.join(group.get('members', []))}")

    # ----- history and search -----------------------------------------------------------

    @_runs(History)
    async def _history(self, command: History) -> None:
        target = command.target or self.target
        if target is None:
            raise CommandError("whose history? :h user|#group (or set one with :to)")
        messages = await self._read_history(target, None)
        title = f"history with {target}"
        if not messages:
            say("info", f"-- {title}: nothing --")
            return
        say("info", f"-- {title}: {len(messages)} --")
        for number, msg in self.mine.number(messages):
            show(format_message(msg, self.me, number=number))
        say("info", "-- end --")

    @_runs(Search)
    async def _search(self, command: Search) -> None:
        keyword, target = command.keyword, command.target or self.target
        if target is not None:
            found = await self._read_history(target, keyword)
            self._show_found(f"{keyword!r} with {target}", found)
            return
        targets = await self._all_conversations()
        limit = asyncio.Semaphore(SEARCH_FANOUT)

        async def one(t: Target) -> list[Message]:
            async with limit:
                try:
                    return await self._read_history(t, keyword)
                except CimApiError:
                    return []  # a group I left, a user that is gone

        results = await asyncio.gather(*(one(t) for t in targets))
        merged = sorted((m for ms in results for m in ms), key=lambda m: m.ts, reverse=True)
        title = f"{keyword!r} in {len(targets)} conversations (my groups and the people I talked with)"
        self._show_found(title, merged[:HISTORY_LIMIT])

    async def _all_conversations(self) -> list[Target]:
        groups = [g["name"] for g in await self.client.groups()]
        self.roster.groups[:] = groups
        return [*(Target(g, group=True) for g in groups), *(Target(p) for p in self.peers)]

    async def _read_history(self, target: Target, q: str | None) -> list[Message]:
        if target.group:
            return await self.client.history(group=target.name, q=q, limit=HISTORY_LIMIT)
        return await self.client.history(with_user=target.name, q=q, limit=HISTORY_LIMIT)

    def _show_found(self, title: str, newest_first: list[Message]) -> None:
        if not newest_first:
            say("info", f"-- {title}: nothing --")
            return
        say("info", f"-- {title}: {len(newest_first)} --")
        for msg in reversed(newest_first):
            show(format_message(msg, self.me))
        say("info", "-- end --")

    # ----- edits and devices ------------------------------------------------------------

    def _pick(self, number: int | None) -> str:
        try:
            return self.mine.pick(number)
        except LookupError as exc:
            raise CommandError(str(exc)) from exc

    @_runs(Edit)
    async def _edit(self, command: Edit) -> None:
        await self.client.edit(self._pick(command.number), command.body)
        say("good", f"edited: {command.body}")

    @_runs(Recall)
    async def _recall(self, command: Recall) -> None:
        await self.client.recall(self._pick(command.number))
        say("good", "recalled")

    @_runs(Devices)
    async def _devices(self, command: Devices) -> None:
        devices = (await self.client.me()).get("devices", [])
        say("info", f"{len(devices)} device{'s' * (len(devices) != 1)} online:")
        for d in devices:
            here = " (this one)" if d["device"] == self.client.device else ""
            say("info", f"  {d['device']} on node {d['node']}{here}")

    # ----- the rest ---------------------------------------------------------------------

    @_runs(EmojiPage)
    async def _emoji(self, command: EmojiPage) -> None:
        count = emoji.page_count()
        items = emoji.page(command.page)
        if not items:
            raise CommandError(f"there are {count} emoji pages")
        say("info", f"emoji page {command.page}/{count} (type :alias: in a message):")
        for i in range(0, len(items), 4):
            row = "  ".join(f"{e} :{a}:".ljust(22) for a, e in items[i : i + 4])
            say("", "  " + row.rstrip())

    @_runs(Online)
    async def _online(self, command: Online) -> None:
        prefix = command.prefix
        users, total = await self.client.online(prefix=prefix, limit=100)
        if not prefix:
            self.roster.users[:] = [u for u in users if u != self.me]
        what = f"online users starting with {prefix!r}" if prefix else "online users"
        more = f" (and {total - len(users)} more)" if total > len(users) else ""
        say("info", f"{total} {what}: {', '.join(sorted(users)) or '-'}{more}")

    @_runs(Info)
    async def _info(self, command: Info) -> None:
        node = self.client.node
        where = f"{node.id} ({node.host}:{node.port})" if node else "-"
        lines = [
            f"user: {self.me} (device {self.client.device})",
            f"node: {where}",
            f"route: {self.route}",
            f"last seq: {self.client.last_seq}",
            f"connection: {self.client.state}",
            f"duplicates dropped: {self.client.duplicates_dropped}",
            f"target: {self.target or 'everyone'}",
        ]
        for line in lines:
            say("info", line)

    @_runs(Help)
    async def _help(self, command: Help) -> None:
        width = max(len(usage) for usage, _ in help_lines())
        for usage, description in help_lines():
            show(FormattedText([("class:me", "  " + usage.ljust(width + 2)), ("", description)]))

    @_runs(Quit)
    async def _quit(self, command: Quit) -> None:
        self.quit = True
