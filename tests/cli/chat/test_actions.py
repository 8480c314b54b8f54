"""The command handlers (cim_cli/chat/actions.py): one for every kind of command."""

from __future__ import annotations

from cim_cli.chat.actions import HANDLERS, note_peer
from cim_cli.chat.commands import Command


def test_every_command_class_has_one_handler() -> None:
    # By name: dataclass(slots=True) leaves the class it replaced among the subclasses.
    assert {kind.__name__ for kind in HANDLERS} == {kind.__name__ for kind in Command.__subclasses__()}
    assert len(HANDLERS) == len({kind.__name__ for kind in HANDLERS})


def test_peers_keep_the_latest_last_and_once() -> None:
    peers = ["ann", "bob"]
    note_peer(peers, "ann")
    note_peer(peers, "cat")
    note_peer(peers, "cat")
    assert peers == ["bob", "ann", "cat"]
