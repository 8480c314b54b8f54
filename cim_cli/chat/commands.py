"""What a line typed into ``cim chat`` means: pure parsing into command objects.

Nothing here does I/O; :mod:`cim_cli.chat` runs the commands. The grammar::

    @user text            private message to user
    user;;text            private message to user (same as @user text)
    #group text           message to a group
    text                  to the current target (:to), else a broadcast to everyone online
    ::text                text that starts with ':' (the first ':' is dropped); a line whose
                          ':' is not followed by a letter (``:)``, ``:-(``) is text anyway
    :to [TARGET]          set the current target: user, @user or #group; no argument clears it
    :g                    list my groups (same as :g list)
    :g create NAME [USER..]   create a group; I am a member too
    :g add NAME USER..    add members
    :g remove NAME USER.. remove members
    :g list               list my groups and their members
    :g NAME text          message to a group (same as #NAME text)
    :h [TARGET]           recent history with TARGET (default: the current target)
    :q [TARGET] KEYWORD   search history: TARGET's conversation, else the current target's,
                          else all my conversations
    :delay SECONDS TARGET text   send later; SECONDS may end in s, m, h or d (90, 1.5, 5m, 2h)
    :emoji [PAGE]         a page of the :alias: table
    :olu                  online users
    :pu PREFIX            online users whose name starts with PREFIX
    :info                 user, node, last seq and connection state
    :help, :all           this list
    :q!, :quit            quit

A TARGET is a username (``bob`` or ``@bob``) or a group (``#dev``). Known
``:alias:`` names in message text become emoji. Anything that cannot be parsed
raises :class:`CommandError` with a message meant for the user.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cim_cli.chat.emoji import ALIASES, replace_aliases

__all__ = [
    "COMMANDS",
    "Broadcast",
    "Command",
    "CommandError",
    "CommandSpec",
    "Delay",
    "EmojiPage",
    "GroupCreate",
    "GroupList",
    "GroupMembers",
    "Help",
    "History",
    "Info",
    "Online",
    "Quit",
    "Say",
    "Search",
    "SendTo",
    "SetTarget",
    "Suggestion",
    "Target",
    "complete",
    "help_lines",
    "parse",
    "parse_target",
    "resolve",
    "valid_name",
]

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,32}\Z")
_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?|\.\d+)(?P<unit>[smhd]?)\Z")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DELAY_S = 30 * 86400


class CommandError(ValueError):
    """A line that means nothing valid; ``str(error)`` is the one line to show the user."""


@dataclass(frozen=True, slots=True)
class Target:
    """Whom a message goes to: a user, or a group when ``group`` is true."""

    name: str
    group: bool = False

    def __str__(self) -> str:
        return f"#{self.name}" if self.group else self.name


# ----- command objects ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """Plain text: to the current target if one is set, else a broadcast."""

    body: str


@dataclass(frozen=True, slots=True)
class SendTo:
    """A message to a given user or group."""

    target: Target
    body: str


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message to every online user (used when plain text has no target)."""

    body: str


@dataclass(frozen=True, slots=True)
class SetTarget:
    """``:to``: the default target of plain text; ``None`` means broadcast."""

    target: Target | None


@dataclass(frozen=True, slots=True)
class GroupCreate:
    """``:g create NAME USERS..``."""

    name: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupMembers:
    """``:g add`` / ``:g remove``: change a group's members."""

    name: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupList:
    """``:g list``: my groups and their members."""


@dataclass(frozen=True, slots=True)
class History:
    """``:h``: recent messages with a target (``None``: the current target)."""

    target: Target | None


@dataclass(frozen=True, slots=True)
class Search:
    """``:q``: server-side search; ``target`` ``None`` means the current target, else everywhere."""

    keyword: str
    target: Target | None


@dataclass(frozen=True, slots=True)
class Delay:
    """``:delay``: send ``body`` to ``target`` after ``seconds``."""

    seconds: float
    target: Target
    body: str

    @property
    def delay_ms(self) -> int:
        return round(self.seconds * 1000)


@dataclass(frozen=True, slots=True)
class EmojiPage:
    """``:emoji [PAGE]``."""

    page: int = 1


@dataclass(frozen=True, slots=True)
class Online:
    """``:olu`` (``prefix`` empty) and ``:pu PREFIX``."""

    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Info:
    """``:info``."""


@dataclass(frozen=True, slots=True)
class Help:
    """``:help`` / ``:all``."""


@dataclass(frozen=True, slots=True)
class Quit:
    """``:q!``."""


Command = (
    Say
    | SendTo
    | Broadcast
    | SetTarget
    | GroupCreate
    | GroupMembers
    | GroupList
    | History
    | Search
    | Delay
    | EmojiPage
    | Online
    | Info
    | Help
    | Quit
)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One line of ``:help``: how it is typed and what it does."""

    usage: str
    description: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("@user text", "private message to user"),
    CommandSpec("user;;text", "private message to user"),
    CommandSpec("#group text", "message to a group"),
    CommandSpec("text", "to the current :to target, else to everyone online"),
    CommandSpec("::text", "send text that starts with ':'"),
    CommandSpec(":to [user|#group]", "set the target of plain text; no argument: everyone"),
    CommandSpec(":g create NAME USER..", "create a group with these members (and me)"),
    CommandSpec(":g add NAME USER..", "add members to a group"),
    CommandSpec(":g remove NAME USER..", "remove members from a group"),
    CommandSpec(":g list", "my groups and their members (also plain :g)"),
    CommandSpec(":g NAME text", "message to a group (same as #NAME text)"),
    CommandSpec(":h [user|#group]", "recent history (default: the current target)"),
    CommandSpec(":q [@user|#group] KEYWORD", "search history: that conversation, the current target, or all"),
    CommandSpec(":delay SECONDS TARGET text", "send later (SECONDS like 30, 1.5, 5m, 2h, 1d)"),
    CommandSpec(":emoji [PAGE]", "a page of the :alias: -> emoji table"),
    CommandSpec(":olu", "online users"),
    CommandSpec(":pu PREFIX", "online users whose name starts with PREFIX"),
    CommandSpec(":info", "user, node, last seq and connection state"),
    CommandSpec(":help", "this list (also :all)"),
    CommandSpec(":q!", "quit (also :quit, Ctrl-D, Ctrl-C)"),
)

# Names typed after ':' and the one-line description shown by completion.
_COMMAND_NAMES: dict[str, str] = {
    "to": "set the target of plain text",
    "g": "groups: create, add, remove, list, or NAME text",
    "h": "recent history",
    "q": "search history",
    "delay": "send later",
    "emoji": "emoji alias table",
    "olu": "online users",
    "pu": "online users by prefix",
    "info": "user, node, seq, connection",
    "help": "list commands",
    "all": "list commands",
    "q!": "quit",
    "quit": "quit",
}
_GROUP_SUBCOMMANDS = ("create", "add", "remove", "list")
# Text smileys that start with ':' and a letter; never command names.
_EMOTICONS = frozenset({"D", "P", "p", "O", "o", "S", "s", "X", "x", "3"})


def help_lines() -> list[tuple[str, str]]:
    """``(usage, description)`` for every input form, in the order ``:help`` shows them."""
    return [(spec.usage, spec.description) for spec in COMMANDS]


# ----- parsing ------------------------------------------------------------------


def parse(line: str) -> Command | None:
    """Parse one input line; ``None`` for a blank line. Raises :class:`CommandError`."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("::"):
        return Say(_body(text[1:]))
    if text.startswith(":") and _is_command(text):
        return _parse_command(text[1:])
    if text.startswith("@"):
        name, body = _split_word(text[1:], strip=False)
        return SendTo(_user_target(name, "@user text"), _required_body(body, f"@{name} text"))
    if text.startswith("#"):
        name, body = _split_word(text[1:], strip=False)
        return SendTo(_group_target(name, "#group text"), _required_body(body, f"#{name} text"))
    head, sep, body = text.partition(";;")
    if sep and _NAME.match(head):
        return SendTo(Target(head), _required_body(body, f"{head};;text"))
    return Say(_body(text))


def resolve(say: Say, target: Target | None) -> SendTo | Broadcast:
    """Plain text goes to the current target, or to everyone when there is none."""
    return Broadcast(say.body) if target is None else SendTo(target, say.body)


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid username or group name (1-32 of ``A-Z a-z 0-9 _ . -``)."""
    return bool(_NAME.match(name))


def parse_target(text: str) -> Target:
    """``bob`` / ``@bob`` -> user ``bob``; ``#dev`` -> group ``dev``."""
    if text.startswith("#"):
        return _group_target(text[1:], "#group")
    return _user_target(text.removeprefix("@"), "user")


def _parse_command(text: str) -> Command:
    name, rest = _split_word(text)
    handler = _HANDLERS.get(name.lower())
    if handler is None:
        raise CommandError(_unknown(name))
    return handler(rest)


def _unknown(name: str) -> str:
    if not name:
        return "a command name must follow ':' (type :help for the list, ::text to send ':text')"
    close = difflib.get_close_matches(name.lower(), list(_COMMAND_NAMES), n=1)
    hint = f" -- did you mean :{close[0]}?" if close else ""
    return f"unknown command :{name}{hint} (type :help for the list)"


def _cmd_to(rest: str) -> Command:
    if not rest or rest in ("*", "all"):
        return SetTarget(None)
    target, extra = _split_word(rest)
    if extra:
        raise CommandError("usage: :to user|#group (one target; :to alone clears it)")
    return SetTarget(parse_target(target))


def _cmd_group(rest: str) -> Command:
    sub, args = _split_word(rest)
    if not sub or sub == "list":
        if args:
            raise CommandError("usage: :g list")
        return GroupList()
    if sub == "create":
        name, users = _group_and_users(args, ":g create NAME USER..", need_users=False)
        return GroupCreate(name, users)
    if sub in ("add", "remove"):
        name, users = _group_and_users(args, f":g {sub} NAME USER..", need_users=True)
        return GroupMembers(name, add=users) if sub == "add" else GroupMembers(name, remove=users)
    target = _group_target(sub.removeprefix("#"), ":g NAME text")
    return SendTo(target, _required_body(args, f":g {target.name} text"))


def _group_and_users(args: str, usage: str, need_users: bool) -> tuple[str, tuple[str, ...]]:
    words = args.split()
    if not words or (need_users and len(words) < 2):
        raise CommandError(f"usage: {usage}")
    name = _group_target(words[0].removeprefix("#"), usage).name
    users = tuple(dict.fromkeys(_user_target(w.removeprefix("@"), usage).name for w in words[1:]))
    return name, users


def _cmd_history(rest: str) -> Command:
    if not rest:
        return History(None)
    target, extra = _split_word(rest)
    if extra:
        raise CommandError("usage: :h [user|#group]")
    return History(parse_target(target))


def _cmd_search(rest: str) -> Command:
    first, after = _split_word(rest)
    if first[:1] in ("@", "#") and after:
        return Search(after, parse_target(first))
    if not rest:
        raise CommandError("usage: :q [@user|#group] KEYWORD (quit is :q!)")
    return Search(rest, None)


def _cmd_delay(rest: str) -> Command:
    usage = ":delay SECONDS user|#group text"
    when, rest = _split_word(rest)
    target, body = _split_word(rest)
    if not when or not target:
        raise CommandError(f"usage: {usage}")
    return Delay(_duration(when), parse_target(target), _required_body(body, usage))


def _duration(text: str) -> float:
    match = _DURATION.match(text.lower())
    if not match:
        raise CommandError(f"bad delay {text!r}: use seconds, or a number ending in s, m, h or d")
    seconds = float(match["n"]) * _UNIT_S[match["unit"]]
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DELAY_S:
        raise CommandError(f"bad delay {text!r}: it must be more than 0 and at most 30 days")
    return seconds


def _cmd_emoji(rest: str) -> Command:
    if not rest:
        return EmojiPage()
    if not rest.isdigit() or int(rest) < 1:
        raise CommandError("usage: :emoji [PAGE] (PAGE is 1, 2, ...)")
    return EmojiPage(int(rest))


def _cmd_prefix(rest: str) -> Command:
    prefix = rest.removeprefix("@")
    if not prefix or " " in prefix:
        raise CommandError("usage: :pu PREFIX")
    return Online(prefix)


def _no_args(command: Command, usage: str) -> Callable[[str], Command]:
    def handler(rest: str) -> Command:
        if rest:
            raise CommandError(f"usage: {usage} (it takes no argument)")
        return command

    return handler


_HANDLERS = {
    "to": _cmd_to,
    "g": _cmd_group,
    "h": _cmd_history,
    "q": _cmd_search,
    "delay": _cmd_delay,
    "emoji": _cmd_emoji,
    "pu": _cmd_prefix,
    "olu": _no_args(Online(), ":olu"),
    "info": _no_args(Info(), ":info"),
    "help": _no_args(Help(), ":help"),
    "all": _no_args(Help(), ":all"),
    "q!": _no_args(Quit(), ":q!"),
    "quit": _no_args(Quit(), ":quit"),
}


def _split_word(text: str, strip: bool = True) -> tuple[str, str]:
    """First whitespace-separated word and the stripped rest.

    With ``strip`` false a leading space means the word is missing (``@ hi``).
    """
    if not strip and text[:1].isspace():
        return "", text.strip()
    parts = text.strip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _is_command(text: str) -> bool:
    """``:olu`` is a command; ``:) hi``, ``:D`` and ``:smile: hi`` are text."""
    name = text[1:].split(maxsplit=1)[0] if text[1:].strip() else ""
    if not name[:1].isalpha() or name in _EMOTICONS:
        return False
    end = text.find(":", 1)
    return not (end > 1 and text[1:end] in ALIASES)


def _user_target(name: str, usage: str) -> Target:
    if not _NAME.match(name):
        raise CommandError(_bad_name("user", name, usage))
    return Target(name)


def _group_target(name: str, usage: str) -> Target:
    if not _NAME.match(name):
        raise CommandError(_bad_name("group", name, usage))
    return Target(name, group=True)


def _bad_name(what: str, name: str, usage: str) -> str:
    if not name:
        return f"a {what} name is missing (usage: {usage})"
    return f"bad {what} name {name!r}: 1-32 of letters, digits, _ . - (usage: {usage})"


def _body(text: str) -> str:
    return replace_aliases(text.strip())


def _required_body(text: str, usage: str) -> str:
    body = _body(text)
    if not body:
        raise CommandError(f"the message is empty (usage: {usage})")
    return body


# ----- completion ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A completion: replace the last ``replace`` characters before the cursor with ``text``."""

    text: str
    replace: int
    meta: str = ""


def complete(before_cursor: str, users: Iterable[str], groups: Iterable[str]) -> list[Suggestion]:
    """Completions for the text left of the cursor.

    Commands after a leading ``:``, online users after ``@`` (or where a
    command expects a user), my groups after ``#`` and in ``:g``, and emoji
    aliases for a ``:word`` inside text.
    """
    words = before_cursor.split(" ")
    word = words[-1]
    if len(words) == 1 and word.startswith(":") and not word.startswith("::"):
        found = _prefixed(word, (f":{n}" for n in _COMMAND_NAMES), _COMMAND_NAMES, ":")
        return found or _emoji(word)
    if word.startswith("@"):
        return _prefixed(word, (f"@{u}" for u in users), {}, "@")
    if word.startswith("#"):
        return _prefixed(word, (f"#{g}" for g in groups), {}, "#")
    if word.startswith(":") and len(word) > 1:
        return _emoji(word)
    return _argument(words, users, groups)


def _argument(words: list[str], users: Iterable[str], groups: Iterable[str]) -> list[Suggestion]:
    """A bare word in the argument position of a command."""
    command, position, word = words[0].lower(), len(words) - 1, words[-1]
    users, groups = list(users), list(groups)
    targets = [*users, *(f"#{g}" for g in groups)]
    if (command in (":to", ":h") and position == 1) or (command == ":delay" and position == 2):
        return _prefixed(word, targets, {}, "")
    if command == ":pu" and position == 1:
        return _prefixed(word, users, {}, "")
    if command == ":g":
        if position == 1:
            meta = dict.fromkeys(_GROUP_SUBCOMMANDS, "subcommand")
            return _prefixed(word, [*_GROUP_SUBCOMMANDS, *groups], meta, "")
        sub = words[1]
        if sub in ("add", "remove", "create") and position == 2:
            return [] if sub == "create" else _prefixed(word, groups, {}, "")
        if sub in ("add", "remove", "create") and position > 2:
            return _prefixed(word, users, {}, "")
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
