"""Several devices per user on real processes (DESIGN.md "Contract (v0.2): several devices"):
every device gets every message and a carbon of every send, each once and in seq order; each
device replays from its own cursor; duplicate_login per device; device_limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from cim_client import Client, ConnectionState, Message
from shared.keys import Keys
from tests.harness import Cluster, eventually

PASSWORD = "password123"


async def _device(cluster: Cluster, user: str, device: str, **kwargs: object) -> Client:
    await cluster.create_user(user, PASSWORD)
    client = Client(cluster.route_url, user, PASSWORD, device=device, backoff_max=1.0, **kwargs)
    await client.connect()
    return client


async def _take(client: Client, n: int) -> list[Message]:
    return [await client.next_message(timeout=5) for _ in range(n)]


async def _nothing_more(client: Client) -> None:
    """No further message within a short while (what was due came already)."""
    with pytest.raises(TimeoutError):
        await client.next_message(timeout=0.5)


@pytest.fixture
async def closing() -> AsyncIterator[list[Client]]:
    clients: list[Client] = []
    yield clients
    await asyncio.gather(*(c.close() for c in clients))


async def test_two_devices_on_two_nodes_get_messages_and_carbons(cluster: Cluster, closing: list) -> None:
    laptop = await _device(cluster, "alice", "laptop")
    phone = await _device(cluster, "alice", "phone")
    bob = await _device(cluster, "bob", "default")
    closing += [laptop, phone, bob]
    assert laptop.node and phone.node and laptop.node.id != phone.node.id, "round robin spreads them"
    me = await laptop.me()
    assert me["online"] and {(d["device"], d["node"]) for d in me["devices"]} == {
        ("laptop", laptop.node.id),
        ("phone", phone.node.id),
    }
    online, total = await bob.online()
    assert online.count("alice") == 1 and total == 2  # users, not devices

    to_alice = await bob.send("alice", "hi alice")
    from_laptop = await laptop.send("bob", "from the laptop")
    from_phone = await phone.send("bob", "from the phone")
    assert to_alice.status == "delivered"

    for device in (laptop, phone):
        got = await _take(device, 3)
        assert [(m.id, m.sender, m.to, m.carbon) for m in got] == [
            (to_alice.id, "bob", "alice", False),
            (from_laptop.id, "alice", "bob", True),
            (from_phone.id, "alice", "bob", True),
        ]
        assert [m.seq for m in got] == [1, 2, 3]  # one seq stream per user, every device sees it
        assert [m.device for m in got] == [None, "laptop", "phone"]  # which device sent it
        await _nothing_more(device)
    got = await _take(bob, 3)  # bob's own send first: its carbon
    assert [(m.id, m.carbon, m.seq) for m in got] == [
        (to_alice.id, True, 1),
        (from_laptop.id, False, 2),
        (from_phone.id, False, 3),
    ]


async def test_each_device_replays_from_its_own_cursor(cluster: Cluster, closing: list) -> None:
    assert cluster.redis is not None
    keys = Keys()
    redis = aioredis.Redis.from_url(cluster.redis.url)
    try:
        laptop = await _device(cluster, "alice", "laptop")
        phone = await _device(cluster, "alice", "phone")
        bob = await _device(cluster, "bob", "default")
        closing += [laptop, bob]
        await bob.send("alice", "m1")
        assert [m.body for m in await _take(phone, 1)] == ["m1"]

        async def acked(device: str, seq: int) -> bool:
            return await redis.get(keys.device_ack("alice", device)) == str(seq).encode()

        await eventually(lambda: acked("phone", 1), timeout=5, what="the phone's ack cursor")
        await phone.close()  # the phone is away for the next two
        await bob.send("alice", "m2")
        await bob.send("alice", "m3")
        assert [m.body for m in await _take(laptop, 3)] == ["m1", "m2", "m3"]
        await eventually(lambda: acked("laptop", 3), timeout=5, what="the laptop's ack cursor")
        # The phone's own cursor says 1: it gets what it missed, though the laptop acked it.
        phone = await _device(cluster, "alice", "phone")
        closing.append(phone)
        got = await _take(phone, 2)
        assert [(m.seq, m.body) for m in got] == [(2, "m2"), (3, "m3")]
        # A device never seen before starts after the newest seq any device acked.
        tablet = await _device(cluster, "alice", "tablet")
        closing.append(tablet)
        await _nothing_more(tablet)
        await bob.send("alice", "m4")
        assert [(m.seq, m.body) for m in await _take(tablet, 1)] == [(4, "m4")]
    finally:
        await redis.aclose()


async def test_same_device_again_is_duplicate_login_and_a_sixth_is_device_limit(
    cluster: Cluster, closing: list
) -> None:
    kicks: dict[str, list[str]] = {}

    async def device(name: str) -> Client:
        client = await _device(cluster, "alice", name, on_kick=kicks.setdefault(name, []).append)
        closing.append(client)
        return client

    first = await device("d1")
    again = await device("d1")  # the same device logs in again (on the other node)
    assert first.node and again.node and first.node.id != again.node.id
    await first.wait_for_state(ConnectionState.CLOSED, timeout=5)
    assert first.close_reason == "duplicate_login" and kicks["d1"] == ["duplicate_login"]
    others = [await device(f"d{i}") for i in range(2, 6)]  # five devices: the limit
    assert all(c.state is ConnectionState.READY for c in [again, *others])
    sixth = await device("d6")
    await again.wait_for_state(ConnectionState.CLOSED, timeout=5)  # the longest-connected goes
    assert again.close_reason == "device_limit"
    assert all(c.state is ConnectionState.READY for c in [*others, sixth])
    me = await sixth.me()
    assert sorted(d["device"] for d in me["devices"]) == ["d2", "d3", "d4", "d5", "d6"]
