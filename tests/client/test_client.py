"""The SDK against a real cluster: nats-server, redis-server, the route and two nodes.

One cluster serves the whole module (every test uses its own usernames); the
tests that kill a node are in test_client_faults.py with a cluster each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from cim_client import AdminClient, CimApiError, Client, ConnectionState, Message
from tests.conftest import SECRET
from tests.harness import API_KEY, Cluster

PASSWORD = "password123"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path_factory.mktemp("sdk"), secret=SECRET) as c:
        await c.start(nodes=2)
        yield c


@asynccontextmanager
async def user(cluster: Cluster, name: str, **kwargs: object) -> AsyncIterator[Client]:
    """A registered, connected client that is closed afterwards."""
    client = Client(cluster.route_url, name, PASSWORD, backoff_min=0.05, backoff_max=0.5, **kwargs)
    try:
        await client.register()
        await client.connect()
        yield client
    finally:
        await client.close()


async def test_send_and_receive_both_ways(cluster: Cluster) -> None:
    async with user(cluster, "alice") as alice, user(cluster, "bob") as bob:
        assert alice.state is ConnectionState.READY and alice.node is not None
        sent = await alice.send("bob", "hello bob")
        assert sent.seq == 1 and sent.status in {"delivered", "stored"}
        got = await bob.next_message(5)
        assert (got.id, got.seq, got.kind, got.sender, got.to, got.body) == (
            sent.id,
            1,
            "p2p",
            "alice",
            "bob",
            "hello bob",
        )
        assert got.ts == sent.ts and got.group is None
        back = await bob.send("alice", "hi alice")
        reply = await alice.next_message(5)
        assert (reply.id, reply.sender, reply.body, reply.seq) == (back.id, "bob", "hi alice", 1)
        assert (await alice.me())["online"] is True
        assert [m.body for m in await alice.history(with_user="bob")] == ["hi alice", "hello bob"]


async def test_register_twice_is_username_taken(cluster: Cluster) -> None:
    async with user(cluster, "carol") as carol:
        with pytest.raises(CimApiError) as info:
            await carol.register()
        assert (info.value.status, info.value.code) == (409, "username_taken")


async def test_groups_and_push(cluster: Cluster) -> None:
    async with user(cluster, "ann") as ann, user(cluster, "ben") as ben:
        assert set((await ann.create_group("team", ["ben"]))["members"]) == {"ann", "ben"}
        assert [g["name"] for g in await ben.groups()] == ["team"]
        answer = await ann.send_group("team", "standup")
        assert answer["recipients"] == 1
        got = await ben.next_message(5)
        assert (got.kind, got.group, got.sender, got.body) == ("group", "team", "ann", "standup")
        async with AdminClient(cluster.route_url, API_KEY) as admin:
            assert (await admin.push(["ann"], "deploy done"))["recipients"] == 1
            pushed = await ann.next_message(5)
            assert (pushed.kind, pushed.body) == ("push", "deploy done")
            assert {n["id"] for n in await admin.nodes()} == {"node-1", "node-2"}


async def test_replay_after_last_seq_and_dedupe(cluster: Cluster) -> None:
    # erin is offline: messages are stored, then replayed after the last_seq she says she holds.
    sender = Client(cluster.route_url, "frank", PASSWORD)
    await sender.register()
    await sender.login()
    erin = Client(cluster.route_url, "erin", PASSWORD, last_seq=1)
    await erin.register()
    try:
        for i in range(1, 4):
            await sender.send("erin", f"m{i}")
        await erin.connect()
        got = [await erin.next_message(5) for _ in range(2)]
        assert [(m.seq, m.body) for m in got] == [(2, "m2"), (3, "m3")]
        assert erin.last_seq == 3
    finally:
        await erin.close()
        await sender.close()


async def test_duplicate_login_kicks_the_older(cluster: Cluster) -> None:
    kicks: list[str] = []
    async with user(cluster, "kate", on_kick=kicks.append) as old:
        new = Client(cluster.route_url, "kate", PASSWORD)
        try:
            await new.connect()
            await old.wait_for_state(ConnectionState.CLOSED, 10)
            assert kicks == ["duplicate_login"]
            assert [m async for m in old.messages()] == []
            assert new.state is ConnectionState.READY
        finally:
            await new.close()


async def test_logout_closes_the_session(cluster: Cluster) -> None:
    kicks: list[str] = []
    async with user(cluster, "liam", on_kick=kicks.append) as liam:
        await liam.logout()
        await liam.wait_for_state(ConnectionState.CLOSED, 10)
        assert kicks == ["logout"]


async def test_on_message_callback(cluster: Cluster) -> None:
    seen: asyncio.Queue[Message] = asyncio.Queue(10)
    async with user(cluster, "mia") as sender, user(cluster, "ned", on_message=seen.put_nowait):
        await sender.send("ned", "cb")
        assert (await asyncio.wait_for(seen.get(), 5)).body == "cb"
