"""The self-healing node session (cim_client/_link.py), seen through ``Client`` against a
fake node: dedupe by seq, batched acks, reconnect with ``last_seq``, kicks, heartbeat, bye."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cim_client import ConnectionClosed, ConnectionState, Message
from shared.protocol import encode
from tests.client.fakes import FakeNode, FakeRoute, make_client, msg


async def test_receive_dedupe_and_batched_ack(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    try:
        assert client.state is ConnectionState.READY
        assert "last_seq" not in node.logins[0]  # first login: the server-side cursor decides
        writer = await node.conns.get()
        for seq in (1, 2, 2, 1, 3):
            writer.write(encode(msg(seq)))
        got = [await client.next_message(5) for _ in range(3)]
        assert [m.seq for m in got] == [1, 2, 3]
        assert got[0] == Message("m1", 1, "p2p", "bob", "alice", "hi", 1001)
        assert client.duplicates_dropped == 2
        assert client.last_seq == 3
        ack = await node.next_received("ack")
        assert ack == {"t": "ack", "seq": 3}  # one cumulative ack for the batch
    finally:
        await client.close()


async def test_unstored_messages_are_never_deduped(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(0, "a")) + encode(msg(0, "b")))
        assert [(await client.next_message(5)).body for _ in range(2)] == ["a", "b"]
        assert client.duplicates_dropped == 0
    finally:
        await client.close()


async def test_reconnect_sends_last_seq_and_reports_states(node: FakeNode, route: FakeRoute) -> None:
    states: list[tuple[ConnectionState, float | None]] = []
    client = make_client(route, on_state=lambda s, d: states.append((s, d)))
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(1)) + encode(msg(2)))
        assert (await client.next_message(5)).seq == 1
        assert (await client.next_message(5)).seq == 2
        writer.close()  # the node goes away
        writer = await asyncio.wait_for(node.conns.get(), 5)
        assert node.logins[-1]["last_seq"] == 2
        writer.write(encode(msg(2)) + encode(msg(3)))  # a replay overlapping what we hold
        assert (await client.next_message(5)).seq == 3
        assert client.duplicates_dropped == 1
        assert [s for s, _ in states] == ["connecting", "ready", "reconnecting", "ready"]
        assert states[2][1] is not None and states[2][1] >= 0
        assert sum(1 for call in route.calls if call[1] == "/api/v1/login") == 2  # through the route again
    finally:
        await client.close()
    assert states[-1][0] is ConnectionState.CLOSED


async def test_drain_kick_reconnects_at_once(node: FakeNode, route: FakeRoute) -> None:
    states: list[tuple[ConnectionState, float | None]] = []
    client = make_client(route, on_state=lambda s, d: states.append((s, d)), backoff_min=5.0)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode({"t": "kick", "reason": "drain"}))
        await asyncio.wait_for(node.conns.get(), 2)  # well before a 5 s backoff
        assert (ConnectionState.RECONNECTING, 0.0) in states
    finally:
        await client.close()


@pytest.mark.parametrize("reason", ["duplicate_login", "logout", "revoked"])
async def test_final_kick_closes(node: FakeNode, route: FakeRoute, reason: str) -> None:
    kicks: list[str] = []
    client = make_client(route, on_kick=kicks.append)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(1)) + encode({"t": "kick", "reason": reason}))
        seen = [m.seq async for m in client.messages()]  # ends when the session does
        assert seen == [1]
        assert client.state is ConnectionState.CLOSED
        assert kicks == [reason]
        assert client.close_reason == reason
        with pytest.raises(ConnectionClosed):
            await client.next_message(1)
        assert len(node.logins) == 1
    finally:
        await client.close()


async def test_heartbeat_pings(route: FakeRoute, node: FakeNode) -> None:
    node.heartbeat_s = 0.05
    client = make_client(route)
    await client.connect()
    try:
        await node.next_received("ping", timeout=2)
        await node.next_received("ping", timeout=2)
        assert client.state is ConnectionState.READY
    finally:
        await client.close()


async def test_close_says_bye_and_is_idempotent(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    await client.close()
    assert (await node.next_received("bye"))["t"] == "bye"
    await client.close()
    assert client.state is ConnectionState.CLOSED


async def test_on_message_callback_and_ack(node: FakeNode, route: FakeRoute) -> None:
    got: list[Message] = []

    async def on_message(m: Message) -> None:
        got.append(m)

    client = make_client(route, on_message=on_message)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(b"".join(encode(msg(s)) for s in range(1, 61)))
        ack = await node.next_received("ack")
        assert ack["seq"] >= 50
        with contextlib.suppress(TimeoutError):
            while (await node.next_received("ack", timeout=1))["seq"] < 60:
                pass
        assert [m.seq for m in got] == list(range(1, 61))
    finally:
        await client.close()


async def test_connect_again_after_a_final_kick(node: FakeNode, route: FakeRoute) -> None:
    client = make_client(route)
    await client.connect()
    try:
        writer = await node.conns.get()
        writer.write(encode(msg(1)) + encode({"t": "kick", "reason": "duplicate_login"}))
        assert (await client.next_message(5)).seq == 1
        await client.wait_for_state(ConnectionState.CLOSED, 5)
        await client.connect()
        assert node.logins[-1]["last_seq"] == 1
        writer = await node.conns.get()
        writer.write(encode(msg(2)))
        assert (await client.next_message(5)).seq == 2  # the old session's end mark is skipped
        assert client.close_reason is None
    finally:
        await client.close()
