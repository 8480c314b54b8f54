"""How the chat prints messages (cim_cli/chat/formatting.py)."""

from __future__ import annotations

from datetime import datetime

from cim_cli.chat.formatting import format_message, kick_text
from cim_client import Message


def _text(ft: object) -> str:
    return "".join(part[1] for part in ft)  # type: ignore[attr-defined]


def test_format_message_per_kind() -> None:
    now = datetime(2030, 5, 1, 12, 0)
    ts = int(datetime(2030, 5, 1, 9, 5).timestamp() * 1000)

    def msg(kind: str, sender: str = "bob", group: str | None = None) -> Message:
        return Message("id", 1, kind, sender, "alice", "hello", ts, group)

    assert _text(format_message(msg("p2p"), "alice", now)) == "09:05 bob: hello"
    assert _text(format_message(msg("group", group="dev"), "alice", now)) == "09:05 #dev bob: hello"
    assert _text(format_message(msg("broadcast"), "alice", now)) == "09:05 (all) bob: hello"
    assert _text(format_message(msg("push", sender=""), "alice", now)) == "09:05 push: hello"
    assert _text(format_message(msg("system", sender=""), "alice", now)) == "09:05 system: hello"
    mine = Message("id", 0, "p2p", "alice", "bob", "hi", ts)
    assert _text(format_message(mine, "alice", now)) == "09:05 you \u2192 bob: hi"
    styles = {part[0] for part in format_message(msg("group", group="dev"), "alice", now)}
    assert "class:group" in styles
    older = datetime(2030, 5, 3, 12, 0)
    assert _text(format_message(msg("p2p"), "alice", older)).startswith("Wed 01 May 09:05 ")


def test_kick_texts() -> None:
    assert kick_text("duplicate_login") == "you logged in somewhere else; this session ends"
    assert kick_text("mystery") == "kicked: mystery"
