"""Receipts, typing, edits and recalls on real processes (DESIGN.md "Contract (v0.2)")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cim_client import CimApiError, Client, Message
from tests.harness import Cluster

PASSWORD = "password123"


@pytest.fixture
async def devices(cluster: Cluster) -> AsyncIterator:
    """``await devices(user, device)``: a connected client, closed at the end."""
    clients: list[Client] = []

    async def make(user: str, device: str = "default", **kwargs: object) -> Client:
        await cluster.create_user(user, PASSWORD)
        client = Client(cluster.route_url, user, PASSWORD, device=device, backoff_max=1.0, **kwargs)
        await client.connect()
        clients.append(client)
        return client

    yield make
    await asyncio.gather(*(c.close() for c in clients))


async def _take(client: Client, n: int) -> list[Message]:
    return [await client.next_message(timeout=5) for _ in range(n)]


async def _nothing_more(client: Client) -> None:
    with pytest.raises(TimeoutError):
        await client.next_message(timeout=0.5)


async def test_receipt_reaches_both_devices_and_typing_is_live_only(devices, cluster: Cluster) -> None:
    laptop, phone, bob = (
        await devices("alice", "laptop"),
        await devices("alice", "phone"),
        await devices("bob"),
    )
    sent = await laptop.send("bob", "are you there?")
    assert (await _take(bob, 1))[0].id == sent.id
    await bob.read(with_user="alice", ts=sent.ts)
    await bob.read(with_user="alice", ts=sent.ts)  # nothing new read: nothing sent
    for device in (laptop, phone):
        carbon, receipt = await _take(device, 2)
        assert (carbon.id, carbon.carbon) == (sent.id, True)
        assert (receipt.kind, receipt.sender, receipt.with_, receipt.read_ts) == (
            "receipt",
            "bob",
            "alice",
            sent.ts,
        )
        assert receipt.seq == 2 and not receipt.carbon
    own = await _take(bob, 1)  # bob's other devices would mark the conversation read
    assert (own[0].kind, own[0].carbon, own[0].to, own[0].read_ts) == ("receipt", True, "alice", sent.ts)
    await _nothing_more(bob)

    await bob.typing(to="alice")
    await bob.typing(to="alice")  # within a second of the first: dropped
    for device in (laptop, phone):
        [note] = await _take(device, 1)
        assert (note.kind, note.sender, note.to, note.seq) == ("typing", "bob", "alice", 0)
        await _nothing_more(device)

    # A reconnect replays what is stored (the carbon, the receipt), never a typing note.
    await phone.close()
    again = await devices("alice", "phone", last_seq=0)
    assert [(m.seq, m.kind) for m in await _take(again, 2)] == [(1, "p2p"), (2, "receipt")]
    await _nothing_more(again)


async def test_edit_and_recall_reach_an_offline_recipient_and_change_history(
    devices, cluster: Cluster
) -> None:
    alice = await devices("alice")
    await cluster.create_user("bob", PASSWORD)
    typo = await alice.send("bob", "helo")
    oops = await alice.send("bob", "wrong chat")
    await alice.edit(typo.id, "hello")
    await alice.recall(oops.id)
    got = await _take(alice, 4)  # alice's devices: the carbons of all four
    assert [(m.kind, m.carbon, m.ref) for m in got] == [
        ("p2p", True, None),
        ("p2p", True, None),
        ("edit", True, typo.id),
        ("recall", True, oops.id),
    ]

    bob = await devices("bob")  # offline until now
    got = await _take(bob, 4)
    assert [(m.seq, m.kind, m.ref, m.body) for m in got] == [
        (1, "p2p", None, "helo"),
        (2, "p2p", None, "wrong chat"),
        (3, "edit", typo.id, "hello"),
        (4, "recall", oops.id, ""),
    ]
    history = await bob.history(with_user="alice")
    assert [(m.id, m.body) for m in history] == [(typo.id, "hello")]
    assert history[0].edited_ts is not None and history[0].edited_ts >= typo.ts

    for call, status, code in (
        (bob.edit(typo.id, "mine now"), 403, "not_sender"),
        (bob.recall(typo.id), 403, "not_sender"),
        (alice.edit("0" * 32, "x"), 404, "unknown_message"),
        (alice.edit(oops.id, "back?"), 404, "unknown_message"),  # recalled: gone
    ):
        with pytest.raises(CimApiError) as err:
            await call
        assert (err.value.status, err.value.code) == (status, code)
