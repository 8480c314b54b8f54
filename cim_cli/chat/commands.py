"""What a line typed into ``cim chat`` means: pure parsing into command objects.

Nothing here does I/O. A line is a message (the forms in ``MESSAGE_FORMS``) or
a ``:command``; every command is one row of ``COMMANDS`` (names, usage, help,
parser, completion hint), and everything else is derived from that table:
parsing, the ``:help`` list (``help_lines``), the names completion offers,
"did you mean". The screen runs each ``Command`` subclass with one handler;
adding a command is one row here plus that handler.

A TARGET is a username (``bob`` or ``@bob``) or a group (``#dev``). Known
``:alias:`` names in message text become emoji. Anything that cannot be parsed
raises :class:`CommandError` with a message meant for the user.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cim_cli.chat.emoji import ALIASES, replace_aliases

__all__ = [
    "COMMANDS",
    "MESSAGE_FORMS",
    "Arg",
    "Broadcast",
    "Command",
    "CommandError",
    "CommandSpec",
    "Delay",
    "Devices",
    "Edit",
    "EmojiPage",
    "GroupCreate",
    "GroupList",
    "GroupMembers",
    "Help",
    "History",
    "Info",
    "Online",
    "Quit",
    "Recall",
    "Say",
    "Search",
    "SendTo",
    "SetTarget",
    "Target",
    "find",
    "help_lines",
    "parse",
    "parse_target",
    "resolve",
    "valid_name",
]

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?|\.\d+)(?P<unit>[smhd]?)")
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
class Command:
    """What a line asks for; the screen has one handler per subclass."""


@dataclass(frozen=True, slots=True)
class Say(Command):
    """Plain text: to the current target if one is set, else a broadcast."""

    body: str


@dataclass(frozen=True, slots=True)
class SendTo(Command):
    """A message to a given user or group."""

    target: Target
    body: str


@dataclass(frozen=True, slots=True)
class Broadcast(Command):
    """A message to every online user (used when plain text has no target)."""

    body: str


@dataclass(frozen=True, slots=True)
class SetTarget(Command):
    """``:to``: the default target of plain text; ``None`` means broadcast."""

    target: Target | None


@dataclass(frozen=True, slots=True)
class GroupCreate(Command):
    """``:g create NAME USERS..``."""

    name: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupMembers(Command):
    """``:g add`` / ``:g remove``: change a group's members."""

    name: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupList(Command):
    """``:g list``: my groups and their members."""


@dataclass(frozen=True, slots=True)
class History(Command):
    """``:h``: recent messages with a target (``None``: the current target)."""

    target: Target | None


@dataclass(frozen=True, slots=True)
class Search(Command):
    """``:q``: server-side search; ``target`` ``None`` means the current target, else everywhere."""

    keyword: str
    target: Target | None


@dataclass(frozen=True, slots=True)
class Delay(Command):
    """``:delay``: send ``body`` to ``target`` after ``seconds``."""

    seconds: float
    target: Target
    body: str

    @property
    def delay_ms(self) -> int:
        return round(self.seconds * 1000)


@dataclass(frozen=True, slots=True)
class Edit(Command):
    """``:edit [N] text``: my last message (or number N of the last ``:h``) now reads ``body``."""

    number: int | None
    body: str


@dataclass(frozen=True, slots=True)
class Recall(Command):
    """``:recall [N]``: take back my last message (or number N of the last ``:h``)."""

    number: int | None


@dataclass(frozen=True, slots=True)
class Devices(Command):
    """``:devices``: where I am online."""


@dataclass(frozen=True, slots=True)
class EmojiPage(Command):
    """``:emoji [PAGE]``."""

    page: int = 1


@dataclass(frozen=True, slots=True)
class Online(Command):
    """``:olu`` (``prefix`` empty) and ``:pu PREFIX``."""

    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Info(Command):
    """``:info``."""


@dataclass(frozen=True, slots=True)
class Help(Command):
    """``:help`` / ``:all``."""


@dataclass(frozen=True, slots=True)
class Quit(Command):
    """``:q!``."""


# ----- the command table ------------------------------------------------------------


class Arg(enum.Enum):
    """What completion offers for one argument of a command."""

    NOTHING = "nothing"
    TARGET = "target"
    """An online user or one of my groups (``#name``)."""
    USER = "user"
    GROUP = "group"
    USERS = "users"
    """A user here and in every later position."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the table: a ``:command`` and everything derived from it.

    ``parse(rest, usage)`` turns the rest of the line into the command (``usage`` is the
    row's, for its error messages); a command that takes no argument gives the command
    itself. ``subcommands`` are rows of their own
    (``:g create``...): their first name is the word after this command's name,
    and ``parse`` then handles any other word (``:g NAME text``).
    """

    names: tuple[str, ...]
    """Typed after ``:``; the first one is the one ``:help`` shows, the others are aliases."""
    usage: str
    help: str
    parse: Callable[[str, str], Command] | Command
    hint: str
    """What completion shows next to the name."""
    args: tuple[Arg, ...] = ()
    subcommands: tuple[CommandSpec, ...] = ()


def _cmd_to(rest: str, usage: str) -> Command:
    if not rest or rest in ("*", "all"):
        return SetTarget(None)
    target, extra = _split_word(rest)
    if extra:
        raise CommandError(f"usage: {usage} (one target; :to alone clears it)")
    return SetTarget(parse_target(target))


def _cmd_group_create(args: str, usage: str) -> Command:
    return GroupCreate(*_group_and_users(args, usage, need_users=False))


def _cmd_group_add(args: str, usage: str) -> Command:
    name, users = _group_and_users(args, usage, need_users=True)
    return GroupMembers(name, add=users)


def _cmd_group_remove(args: str, usage: str) -> Command:
    name, users = _group_and_users(args, usage, need_users=True)
    return GroupMembers(name, remove=users)


def _cmd_group_list(args: str, usage: str) -> Command:
    if args:
        raise CommandError(f"usage: {usage}")
    return GroupList()


def _cmd_group_send(rest: str, usage: str) -> Command:
    """``:g`` alone lists my groups; ``:g NAME text`` sends to one."""
    name, body = _split_word(rest)
    if not name:
        return GroupList()
    target = _group_target(name.removeprefix("#"), usage)
    return SendTo(target, _required_body(body, f":g {target.name} text"))


def _group_and_users(args: str, usage: str, need_users: bool) -> tuple[str, tuple[str, ...]]:
    words = args.split()
    if not words or (need_users and len(words) < 2):
        raise CommandError(f"usage: {usage}")
    name = _group_target(words[0].removeprefix("#"), usage).name
    users = tuple(dict.fromkeys(_user_target(w.removeprefix("@"), usage).name for w in words[1:]))
    return name, users


def _cmd_history(rest: str, usage: str) -> Command:
    if not rest:
        return History(None)
    target, extra = _split_word(rest)
    if extra:
        raise CommandError(f"usage: {usage}")
    return History(parse_target(target))


def _cmd_search(rest: str, usage: str) -> Command:
    first, after = _split_word(rest)
    if first[:1] in ("@", "#") and after:
        return Search(after, parse_target(first))
    if not rest:
        raise CommandError(f"usage: {usage} (quit is :q!)")
    return Search(rest, None)


def _cmd_delay(rest: str, usage: str) -> Command:
    when, rest = _split_word(rest)
    target, body = _split_word(rest)
    if not when or not target:
        raise CommandError(f"usage: {usage}")
    return Delay(_duration(when), parse_target(target), _required_body(body, usage))


def _duration(text: str) -> float:
    match = _DURATION.fullmatch(text.lower())
    if not match:
        raise CommandError(f"bad delay {text!r}: use seconds, or a number ending in s, m, h or d")
    seconds = float(match["n"]) * _UNIT_S[match["unit"]]
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DELAY_S:
        raise CommandError(f"bad delay {text!r}: it must be more than 0 and at most 30 days")
    return seconds


def _cmd_edit(rest: str, usage: str) -> Command:
    """``:edit text`` or ``:edit N text`` (a leading number with text after it is N)."""
    first, after = _split_word(rest)
    if first.isdigit() and after:
        return Edit(int(first), _required_body(after, usage))
    return Edit(None, _required_body(rest, usage))


def _cmd_recall(rest: str, usage: str) -> Command:
    if not rest:
        return Recall(None)
    if not rest.isdigit():
        raise CommandError(f"usage: {usage} (N is a number shown by :h)")
    return Recall(int(rest))


def _cmd_emoji(rest: str, usage: str) -> Command:
    if not rest:
        return EmojiPage()
    if not rest.isdigit() or int(rest) < 1:
        raise CommandError(f"usage: {usage} (PAGE is 1, 2, ...)")
    return EmojiPage(int(rest))


def _cmd_prefix(rest: str, usage: str) -> Command:
    prefix = rest.removeprefix("@")
    if not prefix or " " in prefix:
        raise CommandError(f"usage: {usage}")
    return Online(prefix)


MESSAGE_FORMS: tuple[tuple[str, str], ...] = (
    ("@user text", "private message to user"),
    ("user;;text", "private message to user"),
    ("#group text", "message to a group"),
    ("text", "to the current :to target, else to everyone online"),
    ("::text", "send text that starts with ':'"),
)
"""``(usage, help)`` of the lines that are messages, not commands (parsed by ``parse``)."""

_SUB = "subcommand"
# fmt: off
_GROUP_SUBCOMMANDS = (
    CommandSpec(
        names=("create",), usage=":g create NAME USER..", hint=_SUB,
        help="create a group with these members (and me)",
        parse=_cmd_group_create, args=(Arg.NOTHING, Arg.USERS),
    ),
    CommandSpec(
        names=("add",), usage=":g add NAME USER..", hint=_SUB,
        help="add members to a group",
        parse=_cmd_group_add, args=(Arg.GROUP, Arg.USERS),
    ),
    CommandSpec(
        names=("remove",), usage=":g remove NAME USER..", hint=_SUB,
        help="remove members from a group",
        parse=_cmd_group_remove, args=(Arg.GROUP, Arg.USERS),
    ),
    CommandSpec(
        names=("list",), usage=":g list", hint=_SUB,
        help="my groups and their members (also plain :g)",
        parse=_cmd_group_list,
    ),
)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        names=("to",), usage=":to [user|#group]", hint="set the target of plain text",
        help="set the target of plain text; no argument: everyone",
        parse=_cmd_to, args=(Arg.TARGET,),
    ),
    CommandSpec(
        names=("g",), usage=":g NAME text", hint="groups: create, add, remove, list, or NAME text",
        help="message to a group (same as #NAME text)",
        parse=_cmd_group_send, args=(Arg.GROUP,), subcommands=_GROUP_SUBCOMMANDS,
    ),
    CommandSpec(
        names=("h",), usage=":h [user|#group]", hint="recent history",
        help="recent history (default: the current target)",
        parse=_cmd_history, args=(Arg.TARGET,),
    ),
    CommandSpec(
        names=("q",), usage=":q [@user|#group] KEYWORD", hint="search history",
        help="search history: that conversation, the current target, or all",
        parse=_cmd_search,
    ),
    CommandSpec(
        names=("delay",), usage=":delay SECONDS TARGET text", hint="send later",
        help="send later (SECONDS like 30, 1.5, 5m, 2h, 1d)",
        parse=_cmd_delay, args=(Arg.NOTHING, Arg.TARGET),
    ),
    CommandSpec(
        names=("edit",), usage=":edit [N] text", hint="correct my message",
        help="my last message (or number N of :h) now reads text",
        parse=_cmd_edit,
    ),
    CommandSpec(
        names=("recall",), usage=":recall [N]", hint="take back my message",
        help="take back my last message (or number N of :h)",
        parse=_cmd_recall,
    ),
    CommandSpec(
        names=("devices",), usage=":devices", hint="where I am online",
        help="my devices that are online, and their nodes",
        parse=Devices(),
    ),
    CommandSpec(
        names=("emoji",), usage=":emoji [PAGE]", hint="emoji alias table",
        help="a page of the :alias: -> emoji table",
        parse=_cmd_emoji,
    ),
    CommandSpec(
        names=("olu",), usage=":olu", hint="online users",
        help="online users",
        parse=Online(),
    ),
    CommandSpec(
        names=("pu",), usage=":pu PREFIX", hint="online users by prefix",
        help="online users whose name starts with PREFIX",
        parse=_cmd_prefix, args=(Arg.USER,),
    ),
    CommandSpec(
        names=("info",), usage=":info", hint="user, node, seq, connection",
        help="user, node, last seq and connection state",
        parse=Info(),
    ),
    CommandSpec(
        names=("help", "all"), usage=":help", hint="list commands",
        help="this list (also :all)",
        parse=Help(),
    ),
    CommandSpec(
        names=("q!", "quit"), usage=":q!", hint="quit",
        help="quit (also :quit, Ctrl-D, Ctrl-C)",
        parse=Quit(),
    ),
)
# fmt: on
"""Every ``:command``, in the order ``:help`` shows them."""

_BY_NAME: dict[str, CommandSpec] = {name: spec for spec in COMMANDS for name in spec.names}
# Text smileys that start with ':' and a letter; never command names.
_EMOTICONS = frozenset({"D", "P", "p", "O", "o", "S", "s", "X", "x", "3"})


def find(name: str, table: tuple[CommandSpec, ...] = COMMANDS) -> CommandSpec | None:
    """The row of ``table`` that ``name`` (or an alias) names exactly."""
    return next((spec for spec in table if name in spec.names), None)


def help_lines() -> list[tuple[str, str]]:
    """``(usage, help)`` for every input form, in the order ``:help`` shows them."""
    return [*MESSAGE_FORMS, *((spec.usage, spec.help) for spec in _rows(COMMANDS))]


def _rows(table: tuple[CommandSpec, ...]) -> Iterator[CommandSpec]:
    """Every row with its subcommands before it (``:g create`` .. ``:g list``, then ``:g NAME``)."""
    for spec in table:
        yield from spec.subcommands
        yield spec


# ----- parsing ------------------------------------------------------------------


def parse(line: str) -> Command | None:
    """Parse one input line; ``None`` for a blank line. Raises :class:`CommandError`."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("::"):
        return Say(_body(text[1:]))
    if text.startswith(":") and _is_command(text):
        name, rest = _split_word(text[1:])
        spec = _BY_NAME.get(name.lower())
        if spec is None:
            raise CommandError(_unknown(name))
        return _run_parser(spec, name, rest)
    if text.startswith("@"):
        name, body = _split_word(text[1:], strip=False)
        return SendTo(_user_target(name, "@user text"), _required_body(body, f"@{name} text"))
    if text.startswith("#"):
        name, body = _split_word(text[1:], strip=False)
        return SendTo(_group_target(name, "#group text"), _required_body(body, f"#{name} text"))
    head, sep, body = text.partition(";;")
    if sep and _NAME.fullmatch(head):
        return SendTo(Target(head), _required_body(body, f"{head};;text"))
    return Say(_body(text))


def _run_parser(spec: CommandSpec, typed: str, rest: str) -> Command:
    if spec.subcommands:
        word, args = _split_word(rest)
        sub = find(word, spec.subcommands) if word else None
        if sub is not None:
            return _run_parser(sub, word, args)
    if isinstance(spec.parse, Command):
        if rest:
            raise CommandError(f"usage: :{typed.lower()} (it takes no argument)")
        return spec.parse
    return spec.parse(rest, spec.usage)


def resolve(say: Say, target: Target | None) -> SendTo | Broadcast:
    """Plain text goes to the current target, or to everyone when there is none."""
    return Broadcast(say.body) if target is None else SendTo(target, say.body)


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid username or group name (1-32 of ``A-Z a-z 0-9 _ . -``)."""
    return bool(_NAME.fullmatch(name))


def parse_target(text: str) -> Target:
    """``bob`` / ``@bob`` -> user ``bob``; ``#dev`` -> group ``dev``."""
    if text.startswith("#"):
        return _group_target(text[1:], "#group")
    return _user_target(text.removeprefix("@"), "user")


def _unknown(name: str) -> str:
    if not name:
        return "a command name must follow ':' (type :help for the list, ::text to send ':text')"
    close = difflib.get_close_matches(name.lower(), list(_BY_NAME), n=1)
    hint = f" -- did you mean :{close[0]}?" if close else ""
    return f"unknown command :{name}{hint} (type :help for the list)"


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
    if not _NAME.fullmatch(name):
        raise CommandError(_bad_name("user", name, usage))
    return Target(name)


def _group_target(name: str, usage: str) -> Target:
    if not _NAME.fullmatch(name):
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
