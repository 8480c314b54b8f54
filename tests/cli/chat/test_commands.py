"""The command table and the parsing of chat input (cim_cli/chat/commands.py): pure unit tests."""

from __future__ import annotations

import pytest

from cim_cli.chat.commands import (
    COMMANDS,
    MESSAGE_FORMS,
    Broadcast,
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
    parse,
    parse_target,
    resolve,
)

BOB = Target("bob")
DEV = Target("dev", group=True)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # private messages
        ("@bob hello there", SendTo(BOB, "hello there")),
        ("  @bob    hi  ", SendTo(BOB, "hi")),
        ("bob;;hello", SendTo(BOB, "hello")),
        ("bob;; hello ;; again", SendTo(BOB, "hello ;; again")),
        ("a.b-c_9;;x", SendTo(Target("a.b-c_9"), "x")),
        # group messages
        ("#dev ship it", SendTo(DEV, "ship it")),
        (":g dev ship it", SendTo(DEV, "ship it")),
        (":g #dev ship it", SendTo(DEV, "ship it")),
        # plain text
        ("hello world", Say("hello world")),
        ("hello there;;x", Say("hello there;;x")),
        (";;x", Say(";;x")),
        ("a@b", Say("a@b")),
        ("::olu is a command", Say(":olu is a command")),
        (":) nice", Say(":) nice")),
        (":-(", Say(":-(")),
        (":D", Say(":D")),
        (":smile: hi", Say("\U0001f604 hi")),
        ("ok :+1: :tada:", Say("ok \U0001f44d \U0001f389")),
        ("at 10:30:00 :nope:", Say("at 10:30:00 :nope:")),
        # target
        (":to bob", SetTarget(BOB)),
        (":to @bob", SetTarget(BOB)),
        (":to #dev", SetTarget(DEV)),
        (":to", SetTarget(None)),
        (":to *", SetTarget(None)),
        (":TO bob", SetTarget(BOB)),
        # groups
        (":g create dev alice @bob carol bob", GroupCreate("dev", ("alice", "bob", "carol"))),
        (":g create #dev", GroupCreate("dev", ())),
        (":g add dev carol dave", GroupMembers("dev", add=("carol", "dave"))),
        (":g remove #dev @carol", GroupMembers("dev", remove=("carol",))),
        (":g list", GroupList()),
        (":g", GroupList()),
        # history and search
        (":h", History(None)),
        (":h bob", History(BOB)),
        (":h @bob", History(BOB)),
        (":h #dev", History(DEV)),
        (":q deploy", Search("deploy", None)),
        (":q deploy failed", Search("deploy failed", None)),
        (":q @bob deploy", Search("deploy", BOB)),
        (":q #dev deploy now", Search("deploy now", DEV)),
        (":q @bob", Search("@bob", None)),
        # delayed
        (":delay 30 bob wake up", Delay(30.0, BOB, "wake up")),
        (":delay 1.5 @bob x", Delay(1.5, BOB, "x")),
        (":delay 5m #dev standup :coffee:", Delay(300.0, DEV, "standup \u2615")),
        (":delay 2h bob x", Delay(7200.0, BOB, "x")),
        (":delay 1d bob x", Delay(86400.0, BOB, "x")),
        (":delay .5s bob x", Delay(0.5, BOB, "x")),
        # the rest
        (":emoji", EmojiPage(1)),
        (":emoji 3", EmojiPage(3)),
        (":olu", Online("")),
        (":pu al", Online("al")),
        (":pu @al", Online("al")),
        (":info", Info()),
        (":help", Help()),
        (":all", Help()),
        (":q!", Quit()),
        (":quit", Quit()),
    ],
)
def test_parse(line: str, expected: object) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_blank_line_is_nothing(line: str) -> None:
    assert parse(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("@bob", "the message is empty"),
        ("@bob   ", "the message is empty"),
        ("@ hi", "a user name is missing"),
        ("@bad/name hi", "bad user name 'bad/name'"),
        ("@" + "x" * 33 + " hi", "bad user name"),
        ("bob;;", "the message is empty"),
        ("bob;;   ", "the message is empty"),
        ("#dev", "the message is empty"),
        ("# hi", "a group name is missing"),
        ("#d!ev hi", "bad group name"),
        (":olx", "unknown command :olx -- did you mean :olu?"),
        (":frobnicate", "unknown command :frobnicate (type :help for the list)"),
        (":to bob alice", "usage: :to"),
        (":to #", "a group name is missing"),
        (":to b@d", "bad user name"),
        (":g create", "usage: :g create NAME USER.."),
        (":g create dev b@d", "bad user name"),
        (":g add dev", "usage: :g add NAME USER.."),
        (":g remove", "usage: :g remove NAME USER.."),
        (":g list extra", "usage: :g list"),
        (":g dev", "the message is empty"),
        (":g d!ev hi", "bad group name"),
        (":h bob alice", "usage: :h"),
        (":q", "usage: :q [@user|#group] KEYWORD (quit is :q!)"),
        (":delay", "usage: :delay"),
        (":delay 5", "usage: :delay"),
        (":delay 5 bob", "the message is empty"),
        (":delay soon bob hi", "bad delay 'soon'"),
        (":delay 0 bob hi", "more than 0"),
        (":delay -5 bob hi", "bad delay"),
        (":delay 31d bob hi", "at most 30 days"),
        (":delay 5x bob hi", "bad delay"),
        (":delay nan bob hi", "bad delay"),
        (":emoji x", "usage: :emoji [PAGE]"),
        (":emoji 0", "usage: :emoji [PAGE]"),
        (":pu", "usage: :pu PREFIX"),
        (":pu a b", "usage: :pu PREFIX"),
        (":olu now", "usage: :olu (it takes no argument)"),
        (":info x", "usage: :info"),
        (":q! now", "usage: :q!"),
        (":help me", "usage: :help"),
    ],
)
def test_errors_are_one_helpful_line(line: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        parse(line)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_delay_ms() -> None:
    assert Delay(1.5, BOB, "x").delay_ms == 1500


def test_resolve_plain_text() -> None:
    assert resolve(Say("hi"), None) == Broadcast("hi")
    assert resolve(Say("hi"), BOB) == SendTo(BOB, "hi")
    assert resolve(Say("hi"), DEV) == SendTo(DEV, "hi")


def test_targets() -> None:
    assert parse_target("bob") == BOB
    assert parse_target("@bob") == BOB
    assert parse_target("#dev") == DEV
    assert str(BOB) == "bob" and str(DEV) == "#dev"
    with pytest.raises(CommandError):
        parse_target("")


def test_help_lists_every_command_once_with_a_description() -> None:
    lines = help_lines()
    rows = [*COMMANDS, *(sub for spec in COMMANDS for sub in spec.subcommands)]
    assert len(lines) == len(MESSAGE_FORMS) + len(rows)
    usages = [usage for usage, _ in lines]
    assert len(set(usages)) == len(usages)
    for needed in ("@user", "user;;text", ":to", ":g create", ":g add", ":g remove", ":g list", ":g NAME"):
        assert any(u.startswith(needed) for u in usages), needed
    for needed in (":h", ":q [", ":delay", ":emoji", ":olu", ":pu", ":info", ":help", ":q!"):
        assert any(u.startswith(needed) for u in usages), needed
    assert all(desc and "\n" not in desc for _, desc in lines)


def test_every_help_command_parses() -> None:
    """The help text never advertises a command the parser refuses."""
    samples = {
        ":to [user|#group]": ":to #dev",
        ":g create NAME USER..": ":g create dev bob",
        ":g add NAME USER..": ":g add dev bob",
        ":g remove NAME USER..": ":g remove dev bob",
        ":g list": ":g list",
        ":g NAME text": ":g dev hi",
        ":h [user|#group]": ":h bob",
        ":q [@user|#group] KEYWORD": ":q @bob x",
        ":delay SECONDS TARGET text": ":delay 5 bob hi",
        ":emoji [PAGE]": ":emoji 2",
        ":pu PREFIX": ":pu b",
        ":edit [N] text": ":edit 2 fixed",
        ":recall [N]": ":recall 2",
    }
    for usage, _ in help_lines():
        if usage.startswith(":"):
            assert parse(samples.get(usage, usage)) is not None, usage


def test_a_command_is_one_row_with_its_names_usage_and_parser() -> None:
    names = [name for spec in COMMANDS for name in spec.names]
    assert len(names) == len(set(names))
    for spec in COMMANDS:
        assert spec.usage.startswith(f":{spec.names[0]}") and spec.help and spec.hint, spec.names
        for sub in spec.subcommands:
            assert sub.usage.startswith(f":{spec.names[0]} {sub.names[0]}"), sub.usage


def test_edit_recall_and_devices() -> None:
    assert parse(":edit hello there") == Edit(None, "hello there")
    assert parse(":edit 3 hello") == Edit(3, "hello")
    assert parse(":edit 3") == Edit(None, "3")  # a number alone is the new text
    assert parse(":recall") == Recall(None)
    assert parse(":recall 4") == Recall(4)
    assert parse(":devices") == Devices()
    for bad in (":edit", ":recall x", ":devices now"):
        with pytest.raises(CommandError):
            parse(bad)
