"""The chat's read and typing notes (coalesced, throttled) and who is typing to me; and which
of my messages it knows (``MyMessages``). Pure logic: a fake client records the calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cim_cli.chat.mine import MyMessages
from cim_cli.chat.signals import TYPING_SHOWN_S, Signals
from cim_client import Message


class FakeClient:
    username = "me"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.done = asyncio.Event()

    async def read(self, **kwargs: Any) -> None:
        self.calls.append(("read", kwargs))
        self.done.set()

    async def typing(self, **kwargs: Any) -> None:
        self.calls.append(("typing", kwargs))
        self.done.set()


def _msg(sender: str, ts: int, kind: str = "p2p", **extra: Any) -> Message:
    return Message.from_wire(
        {"id": f"m{ts}", "seq": ts, "kind": kind, "from": sender, "to": "me", "ts": ts, **extra}
    )


async def test_reads_are_coalesced_per_conversation_and_skip_my_own() -> None:
    client, now = FakeClient(), [0.0]
    signals = Signals(client, clock=lambda: now[0])  # type: ignore[arg-type]
    for ts in (1, 2, 3):
        signals.shown(_msg("bob", ts))
    signals.shown(_msg("ann", 4, kind="group", group="team"))
    signals.shown(_msg("me", 5))  # mine: nothing to mark
    signals.shown(_msg("bob", 6, carbon=True))  # a carbon: nothing either
    signals.start()
    try:
        async with asyncio.timeout(2):
            while len(client.calls) < 2:
                client.done.clear()
                await client.done.wait()
    finally:
        await signals.stop()
    assert client.calls == [("read", {"with_user": "bob", "ts": 3}), ("read", {"group": "team", "ts": 4})]


async def test_typing_at_most_once_a_second_and_shown_for_four() -> None:
    client, now = FakeClient(), [100.0]
    signals = Signals(client, clock=lambda: now[0])  # type: ignore[arg-type]
    signals.typing("bob", None)
    signals.typing("bob", None)  # within the second: dropped
    signals.typing(None, None)  # not a message to anyone
    assert list(signals._pending) == [("typing", "bob")]
    now[0] += 1.0
    signals.typing("bob", None)
    signals.typing_from(_msg("bob", 1, kind="typing"))
    signals.typing_from(_msg("ann", 1, kind="typing", group="team"))
    assert signals.who_types() == ["ann in #team", "bob"]
    signals.stopped_typing(_msg("bob", 2))
    assert signals.who_types() == ["ann in #team"]
    now[0] += TYPING_SHOWN_S
    assert signals.who_types() == []


def test_my_messages() -> None:
    mine = MyMessages("me", "laptop")
    with pytest.raises(LookupError):
        mine.pick(None)
    here = _msg("me", 1, carbon=True, device="laptop")
    there = _msg("me", 2, carbon=True, device="phone")
    assert mine.seen(here) and not mine.seen(there)  # this device's own carbon: printed already
    assert mine.pick(None) == there.id
    mine.sent("m9")
    assert mine.pick(None) == "m9"
    assert [n for n, _ in mine.number([_msg("me", 3), _msg("bob", 2)])] == [1, 2]
    assert mine.pick(2) == "m3"
    with pytest.raises(LookupError, match="bob's"):
        mine.pick(1)
    with pytest.raises(LookupError):
        mine.pick(7)
