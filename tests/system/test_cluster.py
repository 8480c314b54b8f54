"""The whole path on real processes: route, two nodes, NATS, Redis, the SDK — on single servers
and on the HA rig (a 3-server NATS cluster and a Redis Cluster of 3 + 3, as ``cim up --ha``)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from cim_client import Client, ConnectionState
from shared import protocol
from tests.ha_rig import HaRig
from tests.harness import SECRET, Cluster, eventually

PASSWORD = "password123"


@pytest.fixture(params=["single", "ha"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A route and two nodes, on their own NATS and Redis or on the HA rig's clusters."""
    rig = HaRig(tmp_path) if request.param == "ha" else Cluster(tmp_path, secret=SECRET)
    async with rig as c:
        await c.start(nodes=2)
        yield c


async def _client(cluster: Cluster, username: str, **kwargs: object) -> Client:
    await cluster.create_user(username, PASSWORD)
    client = Client(cluster.route_url, username, PASSWORD, **kwargs)
    await client.connect()
    return client


@pytest.fixture
async def alice_bob(cluster: Cluster) -> AsyncIterator[tuple[Client, Client]]:
    alice = await _client(cluster, "alice")
    bob = await _client(cluster, "bob")
    yield alice, bob
    await asyncio.gather(alice.close(), bob.close())


async def test_users_on_two_nodes_exchange_messages_both_ways(alice_bob: tuple[Client, Client]) -> None:
    alice, bob = alice_bob
    assert alice.node and bob.node and alice.node.id != bob.node.id, "round robin spreads the two logins"

    before = int(time.time() * 1000)
    sent = await alice.send("bob", "hello bob")
    assert sent.status == "delivered" and sent.seq == 1
    got = await bob.next_message(timeout=5)
    assert (got.id, got.seq, got.kind, got.sender, got.to, got.body) == (
        sent.id,
        1,
        "p2p",
        "alice",
        "bob",
        "hello bob",
    )
    assert before - 1000 <= got.ts <= int(time.time() * 1000) + 1000
    assert got.ts == sent.ts

    carbon = await alice.next_message(timeout=5)  # alice's own send, on each of her devices
    assert (carbon.id, carbon.seq, carbon.carbon, carbon.to) == (sent.id, 1, True, "bob")
    reply = await bob.send("alice", "hi alice")
    back = await alice.next_message(timeout=5)
    assert (back.id, back.seq, back.sender, back.to, back.body) == (reply.id, 2, "bob", "alice", "hi alice")


async def test_offline_recipient_gets_stored_messages_on_login(cluster: Cluster) -> None:
    alice = await _client(cluster, "alice")
    await cluster.create_user("carol", PASSWORD)
    answers = [await alice.send("carol", f"m{i}") for i in range(3)]
    assert [a.status for a in answers] == ["stored"] * 3
    assert [a.seq for a in answers] == [1, 2, 3]

    carol = Client(cluster.route_url, "carol", PASSWORD)
    await carol.connect()
    got = [await carol.next_message(timeout=5) for _ in range(3)]
    assert [(m.seq, m.body) for m in got] == [(1, "m0"), (2, "m1"), (3, "m2")]
    await asyncio.gather(alice.close(), carol.close())


async def test_killed_node_leaves_the_view_and_its_users_move(cluster: Cluster) -> None:
    alice = await _client(cluster, "alice")
    bob = await _client(cluster, "bob")
    assert alice.node and bob.node
    victim = bob.node.id
    survivor = alice.node.id
    assert victim != survivor

    killed_at = time.monotonic()
    await cluster.nodes[victim].kill()
    await cluster.wait_nodes(lambda ids: victim not in ids, timeout=10, what="killed node gone")
    assert time.monotonic() - killed_at <= 3 * 1 + 2, "a dead node leaves within its TTL"

    await alice.send("bob", "while you were moving")
    await eventually(
        lambda: _ready_on(bob, survivor), timeout=15, what="bob reconnected to the surviving node"
    )
    got = await bob.next_message(timeout=10)
    assert got.body == "while you were moving"
    await asyncio.gather(alice.close(), bob.close())


async def _ready_on(client: Client, node_id: str) -> bool:
    return client.state is ConnectionState.READY and client.node is not None and client.node.id == node_id


# ----- malformed input closes only that connection -------------------------------------------------


def _read_frame(sock: socket.socket) -> dict:
    header = _recv_exactly(sock, 4)
    (size,) = struct.unpack(">I", header)
    return msgpack.unpackb(_recv_exactly(sock, size), raw=False)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


BAD_INPUTS = {
    "frame_too_large": struct.pack(">I", 65537) + b"x" * 16,
    "bad_frame": struct.pack(">I", 3) + b"\xc1\xc1\xc1",
    "bad_frame_not_a_map": protocol.HEADER.pack(2) + msgpack.packb([1]),
    "unknown_type": protocol.encode({"t": "launch"}),
    "not_logged_in": protocol.encode({"t": "ping"}),
    "bad_token": protocol.encode({"t": "login", "token": "not-a-token"}),
}


async def test_bad_input_closes_only_that_connection(cluster: Cluster) -> None:
    alice = await _client(cluster, "alice")
    bob = await _client(cluster, "bob")
    assert bob.node
    node = bob.node

    def attack(payload: bytes) -> dict:
        with socket.create_connection((node.host, node.port), timeout=5) as sock:
            sock.sendall(payload)
            frame = _read_frame(sock)
            assert _closed(sock), "the node closes the offending connection"
            return frame

    for case, payload in BAD_INPUTS.items():
        frame = await asyncio.to_thread(attack, payload)
        assert frame["t"] == "error" and frame["code"] == case.removesuffix("_not_a_map"), (case, frame)

        await alice.send("bob", f"still here after {case}")
        assert (await bob.next_message(timeout=5)).body == f"still here after {case}"
        assert bob.state is ConnectionState.READY
    await asyncio.gather(alice.close(), bob.close())


def _sample(text: str, name: str) -> float:
    """The value of one sample line (``name`` with its labels) of a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_change_when_messages_flow(cluster: Cluster) -> None:
    alice = await _client(cluster, "alice")
    bob = await _client(cluster, "bob")
    assert bob.node
    nodes = {
        n["id"]: n
        for n in (await cluster.http.get(cluster.api("/nodes"), headers=cluster.admin_headers)).json()
    }
    node_metrics = f"http://127.0.0.1:{nodes[bob.node.id]['metrics_port']}/metrics"

    async def pages() -> tuple[str, str]:
        route = await cluster.http.get(f"{cluster.route_url}/metrics")
        node = await cluster.http.get(node_metrics)
        return route.text, node.text

    route_before, node_before = await pages()
    for i in range(3):
        await alice.send("bob", f"counted {i}")
        await bob.next_message(timeout=5)
    route_after, node_after = await pages()

    accepted = 'cim_route_messages_total{kind="p2p"}'
    assert _sample(route_after, accepted) - _sample(route_before, accepted) == 3
    out = 'cim_node_messages_out_total{kind="p2p"}'
    assert _sample(node_after, out) - _sample(node_before, out) == 3
    latency = "cim_node_delivery_latency_seconds_count"
    assert _sample(node_after, latency) - _sample(node_before, latency) == 3
    assert _sample(node_after, "cim_node_connections") >= 1
    await asyncio.gather(alice.close(), bob.close())
