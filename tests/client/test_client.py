"""``Client`` (cim_client/_client.py) against a real cluster: nats-server, redis-server, the
route and two nodes, and against a mock route where a real one cannot be made to answer so.

One cluster serves the real-cluster tests of this module (every test uses its own
usernames); the tests that kill a node are in test_client_faults.py with a cluster each.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cim_client import AdminClient, CimApiError, CimError, Client, ConnectionState, Message
from tests.client import helpers
from tests.client.fakes import FakeNode, FakeRoute, make_client
from tests.client.helpers import PASSWORD, user
from tests.harness import API_KEY, Cluster

cluster = helpers.cluster
"""One cluster for the real-cluster tests of this module; they run in the module's loop."""
on_cluster = pytest.mark.asyncio(loop_scope="module")


@on_cluster
@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_send_and_receive_both_ways(cluster: Cluster, transport: str) -> None:
    a, b = f"alice-{transport}", f"bob-{transport}"
    async with user(cluster, a, transport=transport) as alice, user(cluster, b, transport=transport) as bob:
        assert alice.state is ConnectionState.READY and alice.node is not None
        assert alice.node.ws_url and alice.node.ws_url.startswith("ws://127.0.0.1:")
        sent = await alice.send(b, "hello bob")
        assert sent.seq == 1 and sent.status in {"delivered", "stored"}
        got = await bob.next_message(5)
        assert (got.id, got.seq, got.kind, got.sender, got.to, got.body) == (
            sent.id,
            1,
            "p2p",
            a,
            b,
            "hello bob",
        )
        assert got.ts == sent.ts and got.group is None
        carbon = await alice.next_message(5)  # my own send, on every device of mine
        assert (carbon.id, carbon.carbon, carbon.to, carbon.seq, carbon.device) == (
            sent.id,
            True,
            b,
            1,
            "default",
        )
        assert not got.carbon
        back = await bob.send(a, "hi alice")
        reply = await alice.next_message(5)
        assert (reply.id, reply.sender, reply.body, reply.seq) == (back.id, b, "hi alice", 2)
        assert (await alice.me())["online"] is True
        assert [m.body for m in await alice.history(with_user=b)] == ["hi alice", "hello bob"]


@on_cluster
async def test_register_twice_is_username_taken(cluster: Cluster) -> None:
    async with user(cluster, "carol") as carol:
        with pytest.raises(CimApiError) as info:
            await carol.register()
        assert (info.value.status, info.value.code) == (409, "username_taken")


@on_cluster
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
            carbon = await ann.next_message(5)
            assert (carbon.id, carbon.carbon, carbon.to, carbon.group) == (answer["id"], True, "team", "team")
            pushed = await ann.next_message(5)
            assert (pushed.kind, pushed.body) == ("push", "deploy done")
            assert {n["id"] for n in await admin.nodes()} == {"node-1", "node-2"}


@on_cluster
@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_replay_after_last_seq_and_dedupe(cluster: Cluster, transport: str) -> None:
    # erin is offline: messages are stored, then replayed after the last_seq she says she holds.
    name = f"erin-{transport}"
    sender = Client(cluster.route_url, f"frank-{transport}", PASSWORD)
    await sender.register()
    await sender.login()
    erin = Client(cluster.route_url, name, PASSWORD, last_seq=1, transport=transport)
    await erin.register()
    try:
        for i in range(1, 4):
            await sender.send(name, f"m{i}")
        await erin.connect()
        got = [await erin.next_message(5) for _ in range(2)]
        assert [(m.seq, m.body) for m in got] == [(2, "m2"), (3, "m3")]
        assert erin.last_seq == 3
    finally:
        await erin.close()
        await sender.close()


@on_cluster
@pytest.mark.parametrize(("old_transport", "new_transport"), [("tcp", "tcp"), ("ws", "tcp"), ("tcp", "ws")])
async def test_duplicate_login_kicks_the_older(
    cluster: Cluster, old_transport: str, new_transport: str
) -> None:
    kicks: list[str] = []
    name = f"kate-{old_transport}-{new_transport}"
    async with user(cluster, name, on_kick=kicks.append, transport=old_transport) as old:
        new = Client(cluster.route_url, name, PASSWORD, transport=new_transport)
        try:
            await new.connect()
            await old.wait_for_state(ConnectionState.CLOSED, 10)
            assert kicks == ["duplicate_login"]
            assert [m async for m in old.messages()] == []
            assert new.state is ConnectionState.READY
        finally:
            await new.close()


@on_cluster
async def test_logout_closes_the_session(cluster: Cluster) -> None:
    kicks: list[str] = []
    async with user(cluster, "liam", on_kick=kicks.append) as liam:
        await liam.logout()
        await liam.wait_for_state(ConnectionState.CLOSED, 10)
        assert kicks == ["logout"]


@on_cluster
async def test_on_message_callback(cluster: Cluster) -> None:
    seen: asyncio.Queue[Message] = asyncio.Queue(10)
    async with user(cluster, "mia") as sender, user(cluster, "ned", on_message=seen.put_nowait):
        await sender.send("ned", "cb")
        assert (await asyncio.wait_for(seen.get(), 5)).body == "cb"


# ----- against a mock route -----------------------------------------------------------


async def test_bad_credentials_on_connect_raise(node: FakeNode, route: FakeRoute) -> None:
    route.scripted["/api/v1/login"] = [httpx.Response(401, json={"error": "bad_credentials", "detail": "no"})]
    client = make_client(route)
    with pytest.raises(CimApiError) as info:
        await client.connect()
    assert info.value.code == "bad_credentials"
    assert client.state is ConnectionState.CLOSED
    await client.close()


async def test_ws_transport_needs_a_node_with_a_websocket(node: FakeNode, route: FakeRoute) -> None:
    with pytest.raises(ValueError, match="transport"):
        make_client(route, transport="udp")
    client = make_client(route, transport="ws")  # the fake route's node has no ws_url
    with pytest.raises(CimError) as info:
        await client.connect()
    assert info.value.code == "no_websocket"
    assert client.state is ConnectionState.CLOSED
    await client.close()


async def test_connect_after_login_uses_that_login(node: FakeNode, route: FakeRoute) -> None:
    """One /login per start: the round-robin balancer must not be asked twice for one session."""
    client = make_client(route)
    try:
        answer = await client.login()
        await client.connect()
        assert client.state is ConnectionState.READY and node.logins[0]["token"] == answer["token"]
        assert [path for _, path, _ in route.calls] == ["/api/v1/login"]
    finally:
        await client.close()
    await client.connect()  # a later session logs in afresh
    try:
        assert [path for _, path, _ in route.calls] == ["/api/v1/login", "/api/v1/login"]
    finally:
        await client.close()
