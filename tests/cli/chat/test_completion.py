"""What Tab offers (cim_cli/chat/completion.py): pure unit tests over the command table."""

from __future__ import annotations

from cim_cli.chat.commands import COMMANDS
from cim_cli.chat.completion import Suggestion, complete

USERS = ["alice", "albert", "bob"]
GROUPS = ["dev", "design", "ops"]


def texts(suggestions: list[Suggestion]) -> list[str]:
    return [s.text for s in suggestions]


def test_complete_commands() -> None:
    found = complete(":o", USERS, GROUPS)
    assert texts(found) == [":olu"]
    assert found[0].replace == 2 and found[0].meta == "online users"
    assert texts(complete(":q", USERS, GROUPS)) == [":q!", ":quit"]
    assert ":delay" in texts(complete(":", USERS, GROUPS))


def test_complete_users_after_at() -> None:
    assert texts(complete("@al", USERS, GROUPS)) == ["@albert", "@alice"]
    assert complete("@al", USERS, GROUPS)[0].replace == 3
    assert texts(complete("@", USERS, GROUPS)) == ["@albert", "@alice", "@bob"]
    assert texts(complete("hey @b", USERS, GROUPS)) == ["@bob"]
    assert texts(complete("@bob", USERS, GROUPS)) == []
    assert texts(complete(":to @b", USERS, GROUPS)) == ["@bob"]


def test_complete_groups_after_hash() -> None:
    assert texts(complete("#de", USERS, GROUPS)) == ["#design", "#dev"]
    assert texts(complete(":to #o", USERS, GROUPS)) == ["#ops"]


def test_complete_command_arguments() -> None:
    assert texts(complete(":to b", USERS, GROUPS)) == ["bob"]
    assert texts(complete(":h ", USERS, GROUPS)) == ["#design", "#dev", "#ops", "albert", "alice", "bob"]
    assert texts(complete(":delay 5 a", USERS, GROUPS)) == ["albert", "alice"]
    assert texts(complete(":delay 5 bob a", USERS, GROUPS)) == []
    assert texts(complete(":pu a", USERS, GROUPS)) == ["albert", "alice"]
    assert texts(complete(":g ", USERS, GROUPS)) == [
        "add",
        "create",
        "design",
        "dev",
        "list",
        "ops",
        "remove",
    ]
    assert complete(":g c", USERS, GROUPS) == [Suggestion("create", 1, "subcommand")]
    assert texts(complete(":g add d", USERS, GROUPS)) == ["design", "dev"]
    assert texts(complete(":g add dev a", USERS, GROUPS)) == ["albert", "alice"]
    assert texts(complete(":g create new b", USERS, GROUPS)) == ["bob"]
    assert texts(complete(":g create d", USERS, GROUPS)) == []
    assert texts(complete(":g dev hello b", USERS, GROUPS)) == []
    assert texts(complete("plain words", USERS, GROUPS)) == []


def test_complete_emoji_aliases() -> None:
    found = complete("nice :tad", USERS, GROUPS)
    assert texts(found) == [":tada:"] and found[0].replace == 4 and found[0].meta == "\U0001f389"
    assert texts(complete(":smil", USERS, GROUPS)) == [":smile:", ":smiley:"]
    assert complete("x :tada:", USERS, GROUPS) == []


def test_every_command_name_of_the_table_completes() -> None:
    offered = {s.text: s.meta for s in complete(":", [], [])}
    assert offered == {f":{name}": spec.hint for spec in COMMANDS for name in spec.names}
