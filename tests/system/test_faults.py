"""Delivery guarantees under faults, on real processes (DESIGN.md "delivery guarantees").

Each test runs traffic between SDK clients, breaks one component mid-stream, and
then counts: sent, accepted (202), received, duplicates dropped by the SDK,
lost. Lost must be 0, nothing may be shown twice, and every recipient must see
its messages in seq order with no gap. The counts are printed (``pytest -s``)
and recorded in docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cim_client import Client
from shared import protocol
from tests.harness import SECRET, Cluster, eventually
from tests.system.traffic import PASSWORD, run_with_fault


@pytest.fixture
async def fault_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path, secret=SECRET, rate_limit="0") as c:
        await c.start(nodes=2)
        yield c


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_a_node_killed_while_messages_flow(fault_cluster: Cluster, transport: str) -> None:
    async def kill_a_node() -> None:
        await fault_cluster.nodes["node-2"].kill()

    name = "a_node_sigkill" if transport == "tcp" else "a_node_sigkill_websocket"
    await run_with_fault(fault_cluster, kill_a_node, name, transport=transport)


async def test_a_node_killed_with_two_devices_per_user(fault_cluster: Cluster) -> None:
    """Each recipient on a laptop and a phone, on different nodes; one node dies: the devices
    there reconnect and replay from their own cursors, the others carry on (``_run`` checks
    that every device got every message, once and in seq order)."""

    async def kill_a_node() -> None:
        await fault_cluster.nodes["node-2"].kill()

    await run_with_fault(
        fault_cluster, kill_a_node, "a_node_sigkill_two_devices", devices=("laptop", "phone")
    )


async def test_b_nats_restarted_mid_stream(fault_cluster: Cluster) -> None:
    await run_with_fault(fault_cluster, fault_cluster.restart_nats, "b_nats_restart")


async def test_c_route_killed_senders_retry_on_the_other(fault_cluster: Cluster) -> None:
    spare = await fault_cluster.add_route(rate_limit="0")
    # Senders try the spare route first; it dies a third of the way in and every send in
    # flight is retried on the first route with the same client_msg_id.
    urls = [f"http://127.0.0.1:{spare.port}", fault_cluster.route_url]
    await run_with_fault(fault_cluster, spare.kill, "c_route_sigkill", route_urls=urls)


async def test_d_redis_down_answers_503_then_recovers(fault_cluster: Cluster) -> None:
    alice = await fault_cluster.register("alice", PASSWORD)
    await fault_cluster.register("bob", PASSWORD)
    bob = Client(fault_cluster.route_url, "bob", PASSWORD, backoff_max=1.0)
    await bob.connect()
    headers = {"Authorization": f"Bearer {alice['token']}"}
    url = fault_cluster.api("/messages")
    first = await fault_cluster.http.post(url, json={"to": "bob", "body": "before"}, headers=headers)
    assert first.status_code == 202
    assert (await bob.next_message(timeout=5)).body == "before"

    assert fault_cluster.redis
    await fault_cluster.redis.astop()
    down = await fault_cluster.http.post(url, json={"to": "bob", "body": "during"}, headers=headers)
    assert down.status_code == 503
    assert down.json()["error"] == "unavailable" and down.json()["detail"]
    ready = await fault_cluster.http.get(f"{fault_cluster.route_url}/readyz")
    assert ready.status_code == 503

    await fault_cluster.restart_redis()

    async def accepted() -> httpx.Response | None:
        resp = await fault_cluster.http.post(url, json={"to": "bob", "body": "after"}, headers=headers)
        return resp if resp.status_code == 202 else None

    answer = await eventually(accepted, timeout=15, interval=0.2, what="sends accepted again")
    assert answer.json()["seq"] == 2, "the refused send stored nothing: no gap, no half-accepted message"
    got = await bob.next_message(timeout=10)
    assert (got.seq, got.body) == (2, "after")
    await bob.close()


async def test_e_slow_reader_is_disconnected_and_catches_up(tmp_path: Path) -> None:
    async with Cluster(tmp_path, secret=SECRET, rate_limit="0") as cluster:
        await cluster.start(nodes=1, node_env={"write_buffer": "131072"})
        sender = await cluster.register("sender", PASSWORD)
        slow_login = await cluster.register("slow", PASSWORD)
        await cluster.register("fast", PASSWORD)
        fast = Client(cluster.route_url, "fast", PASSWORD)
        await fast.connect()

        node = slow_login["node"]
        sock = socket.create_connection((node["host"], node["port"]))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(protocol.encode({"t": "login", "token": slow_login["token"], "last_seq": 0}))
        headers = {"Authorization": f"Bearer {sender['token']}"}
        body = "x" * 8000
        count = 400  # 3.2 MB for a reader that takes nothing
        for i in range(count):
            resp = await cluster.http.post(
                cluster.api("/messages"), json={"to": "slow", "body": f"{i}:{body}"}, headers=headers
            )
            assert resp.status_code == 202
            if i % 50 == 0:
                await cluster.http.post(
                    cluster.api("/messages"), json={"to": "fast", "body": f"ping {i}"}, headers=headers
                )
                assert (await fast.next_message(timeout=5)).body == f"ping {i}"

        async def slow_is_offline() -> bool:
            me = await cluster.http.get(
                cluster.api("/me"), headers={"Authorization": f"Bearer {slow_login['token']}"}
            )
            return me.status_code == 200 and me.json()["online"] is False

        await eventually(slow_is_offline, timeout=10, what="slow reader disconnected")
        sock.close()

        slow = Client(cluster.route_url, "slow", PASSWORD, last_seq=0)
        await slow.connect()
        got = [await slow.next_message(timeout=10) for _ in range(count)]
        assert [m.seq for m in got] == list(range(1, count + 1))
        assert [m.body.split(":")[0] for m in got] == [str(i) for i in range(count)]
        await asyncio.gather(slow.close(), fast.close())


async def test_f_drained_node_moves_its_clients_with_no_loss(fault_cluster: Cluster) -> None:
    async def drain_node_1() -> None:
        resp = await fault_cluster.http.post(
            fault_cluster.api("/nodes/node-1/drain"), headers=fault_cluster.admin_headers
        )
        assert resp.status_code == 202

    await run_with_fault(fault_cluster, drain_node_1, "f_node_drain")
    # the drained node empties, leaves the registry and exits 0
    assert await fault_cluster.nodes["node-1"].wait(timeout=15) == 0
    assert await fault_cluster.node_ids() == {"node-2"}


async def test_g_redis_killed_mid_stream_loses_nothing_accepted(fault_cluster: Cluster) -> None:
    """Redis writes its append-only file before it answers, so a SIGKILL of the redis-server
    process loses no message that was answered 202; sends refused meanwhile are retried."""

    async def kill_and_restart_redis() -> None:
        assert fault_cluster.redis
        fault_cluster.redis.kill()
        await fault_cluster.restart_redis()

    await run_with_fault(fault_cluster, kill_and_restart_redis, "g_redis_sigkill")
