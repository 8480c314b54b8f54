"""What Tab offers in ``cim chat``: command names, users, groups and emoji aliases.

``complete`` is pure (the text left of the cursor in, suggestions out) and takes
the argument kinds from the command table; ``ChatCompleter`` adapts it to
prompt-toolkit over a ``Roster`` that the screen refreshes in the background.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from cim_cli.chat.commands import COMMANDS, Arg, CommandSpec, find
from cim_cli.chat.emoji import ALIASES

__all__ = ["ChatCompleter", "Roster", "Suggestion", "complete"]

_COMMAND_HINTS = {name: spec.hint for spec in COMMANDS for name in spec.names}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A completion: replace the last ``replace`` characters before the cursor with ``text``."""

    text: str
    replace: int
    meta: str = ""


def complete(before_cursor: str, users: Iterable[str], groups: Iterable[str]) -> list[Suggestion]:
    """Completions for the text left of the cursor.

    Commands after a leading ``:``, online users after ``@`` (or where a
    command expects a user), my groups after ``#`` and where a command expects
    a group, and emoji aliases for a ``:word`` inside text.
    """
    words = before_cursor.split(" ")
    word = words[-1]
    if len(words) == 1 and word.startswith(":") and not word.startswith("::"):
        found = _prefixed(word, (f":{n}" for n in _COMMAND_HINTS), _COMMAND_HINTS, ":")
        return found or _emoji(word)
    if word.startswith("@"):
        return _prefixed(word, (f"@{u}" for u in users), {}, "@")
    if word.startswith("#"):
        return _prefixed(word, (f"#{g}" for g in groups), {}, "#")
    if word.startswith(":") and len(word) > 1:
        return _emoji(word)
    spec = find(words[0].lower().removeprefix(":")) if words[0].startswith(":") else None
    return [] if spec is None else _argument(spec, words, list(users), list(groups))


def _argument(spec: CommandSpec, words: list[str], users: list[str], groups: list[str]) -> list[Suggestion]:
    """A bare word in the argument position ``len(words) - 1`` of the command ``spec``."""
    position, word = len(words) - 1, words[-1]
    if spec.subcommands and position == 1:
        meta = {name: sub.hint for sub in spec.subcommands for name in sub.names}
        return _prefixed(word, [*meta, *_candidates(_arg_at(spec, 1), users, groups)], meta, "")
    sub = find(words[1], spec.subcommands) if spec.subcommands else None
    if sub is not None:
        spec, position = sub, position - 1
    return _prefixed(word, _candidates(_arg_at(spec, position), users, groups), {}, "")


def _arg_at(spec: CommandSpec, position: int) -> Arg:
    """The kind of argument ``position`` (1 = the first after the name)."""
    if position <= len(spec.args):
        return spec.args[position - 1]
    return Arg.USERS if spec.args[-1:] == (Arg.USERS,) else Arg.NOTHING


def _candidates(arg: Arg, users: list[str], groups: list[str]) -> list[str]:
    if arg is Arg.TARGET:
        return [*users, *(f"#{g}" for g in groups)]
    if arg in (Arg.USER, Arg.USERS):
        return users
    if arg is Arg.GROUP:
        return groups
    return []


def _prefixed(word: str, candidates: Iterable[str], meta: dict[str, str], strip: str) -> list[Suggestion]:
    seen = dict.fromkeys(c for c in candidates if c.startswith(word) and c != word)
    return [Suggestion(c, len(word), meta.get(c[len(strip) :], "")) for c in sorted(seen)]


def _emoji(word: str) -> list[Suggestion]:
    stem = word[1:].rstrip(":")
    return [
        Suggestion(f":{alias}:", len(word), emoji)
        for alias, emoji in ALIASES.items()
        if alias.startswith(stem) and f":{alias}:" != word
    ]


@dataclass
class Roster:
    """What completion offers: users online now and my groups, refreshed in the background."""

    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


class ChatCompleter(Completer):
    """``complete`` for prompt-toolkit, over the current roster."""

    def __init__(self, roster: Roster) -> None:
        self._roster = roster

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        for s in complete(document.text_before_cursor, self._roster.users, self._roster.groups):
            yield Completion(s.text, start_position=-s.replace, display_meta=s.meta or None)
