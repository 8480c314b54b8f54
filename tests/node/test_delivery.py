"""Delivery over real NATS and Redis: replay, live merge, gap fill, broadcast, acks, slow readers."""

from __future__ import annotations

import asyncio
import socket

import httpx

from cim_node.server import NodeServer
from shared import bus
from shared.keys import Keys
from shared.protocol import encode
from tests.harness import eventually
from tests.node.conftest import Client, Inbox, NodeFactory, msg_frames


def seqs(frames: list[dict]) -> list[int]:
    return [f["seq"] for f in frames]


async def test_replay_after_last_seq(node: NodeServer, clients, box: Inbox) -> None:
    stored = await box.store("alice", 5)
    c = await clients(node)
    welcome = await c.login("alice", last_seq=2)
    assert welcome["last_seq"] == 2
    got = await c.recv_msgs(3)
    assert got == stored[2:]
    assert got[0]["t"] == "msg" and got[0]["to"] == "alice" and got[0]["kind"] == "p2p"


async def test_replay_after_ack_cursor(node: NodeServer, clients, box: Inbox, redis, prefix) -> None:
    await box.store("alice", 5)
    await redis.set(Keys(prefix).ack("alice"), 3)
    c = await clients(node)
    assert (await c.login("alice"))["last_seq"] == 3
    assert seqs(await c.recv_msgs(2)) == [4, 5]
    await c.send({"t": "ping"})
    assert await c.recv() == {"t": "pong"}  # nothing else was queued before it


async def test_replay_then_live_without_gap_or_duplicate(node: NodeServer, clients, box: Inbox) -> None:
    stored = await box.store("alice", 450)  # more than two replay pages
    c = await clients(node)
    login = asyncio.ensure_future(c.login("alice", last_seq=0))
    # Live traffic during the replay: repeats of replayed messages and new ones.
    await box.publish(node, stored[:50])
    live = await box.send(node, "alice", 30)
    await login
    got = await c.recv_msgs(480)
    assert seqs(got) == list(range(1, 481))
    assert got[-1] == live[-1]
    await c.send({"t": "ping"})
    assert await c.recv() == {"t": "pong"}


async def test_out_of_order_live_messages_are_reordered(node: NodeServer, clients, box: Inbox) -> None:
    c = await clients(node)
    await c.login("alice")
    one, two, three = await box.store("alice", 3)
    await box.publish(node, [one, three, two])
    assert seqs(await c.recv_msgs(3)) == [1, 2, 3]


async def test_gap_is_filled_from_the_inbox(node: NodeServer, clients, box: Inbox) -> None:
    c = await clients(node)
    await c.login("alice")
    one, _two, three = await box.store("alice", 3)
    await box.publish(node, [one])
    await box.publish(node, [three])  # seq 2 is never published: the inbox has it
    got = await c.recv_msgs(3)
    assert seqs(got) == [1, 2, 3]
    await box.publish(node, [three, one])  # late repeats are dropped
    await c.send({"t": "ping"})
    assert await c.recv() == {"t": "pong"}


async def test_resync_reads_what_was_missed(node: NodeServer, clients, box: Inbox) -> None:
    """What a NATS reconnect does: messages stored but never published reach the client."""
    c = await clients(node)
    await c.login("alice")
    await box.store("alice", 4)
    node.delivery.resync_all()
    assert seqs(await c.recv_msgs(4)) == [1, 2, 3, 4]


async def test_broadcast_and_system_messages(node: NodeServer, clients, nc) -> None:
    users = ["alice", "bob", "carol"]
    conns = {u: await clients(node) for u in users}
    for u, c in conns.items():
        await c.login(u)
    msg = {
        "t": "msg",
        "id": "b1",
        "seq": 0,
        "kind": "broadcast",
        "from": "alice",
        "to": "",
        "body": "hi",
        "ts": 1,
    }
    await nc.publish(bus.BROADCAST_SUBJECT, bus.broadcast(msg, exclude="alice"))
    for u in ("bob", "carol"):
        assert await conns[u].recv() == {**msg, "to": u}
    system = {**msg, "id": "s1", "kind": "system", "to": "alice"}
    await nc.publish(bus.node_subject(node.id), bus.msgs([system]))
    assert await conns["alice"].recv() == system  # the broadcast skipped alice: next is this one


async def test_acks_are_batched_into_one_redis_write(
    node: NodeServer, clients, box: Inbox, redis, prefix
) -> None:
    key = Keys(prefix).ack("alice")
    c = await clients(node)
    await c.login("alice")
    await box.send(node, "alice", 5)
    await c.recv_msgs(5)
    before = await _evalsha_calls(redis)
    frames = b"".join(encode({"t": "ack", "seq": s}) for s in (1, 2, 3, 4, 5, 99))
    await c.send_raw(frames)
    await eventually(lambda: _get_int(redis, key, 5), timeout=3, what="ack cursor 5")
    assert await _evalsha_calls(redis) - before == 1
    assert 0 < await redis.pttl(key) <= node.settings.retention_s * 1000
    assert int(await redis.get(key)) == 5  # ack 99 was clamped to what was delivered


async def test_acks_survive_redis_losing_its_scripts(
    node: NodeServer, clients, box: Inbox, redis, prefix
) -> None:
    c = await clients(node)
    await c.login("alice")
    await box.send(node, "alice", 2)
    await c.recv_msgs(2)
    await redis.script_flush()
    await c.send({"t": "ack", "seq": 2})
    await eventually(lambda: _get_int(redis, Keys(prefix).ack("alice"), 2), timeout=3, what="ack cursor 2")


async def test_ack_is_written_at_close(make_node: NodeFactory, clients, box: Inbox, redis, prefix) -> None:
    node = await make_node(ack_flush_ms=60000)
    c = await clients(node)
    await c.login("alice")
    await box.send(node, "alice", 3)
    await c.recv_msgs(3)
    await c.send({"t": "ack", "seq": 2})
    await c.send({"t": "bye"})
    await c.expect_closed()
    await eventually(lambda: _get_int(redis, Keys(prefix).ack("alice"), 2), timeout=3, what="ack at close")
    again = await clients(node)
    assert (await again.login("alice"))["last_seq"] == 2
    assert seqs(await again.recv_msgs(1)) == [3]


async def test_slow_reader_is_closed_and_others_keep_receiving(
    make_node: NodeFactory, nc, box: Inbox
) -> None:
    node = await make_node(write_buffer=65536)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", node.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    slow = Client(reader, writer)
    fast = await Client.connect(node)
    try:
        await slow.login("slow")
        await fast.login("fast")
        frames = msg_frames("slow", 400, "x" * 8000)
        for i in range(0, len(frames), 100):
            await nc.publish(bus.node_subject(node.id), bus.msgs(frames[i : i + 100]))
        await nc.flush()

        async def closed_as_slow() -> bool:
            return node.metrics.registry.get_sample_value("cim_node_slow_consumers_total") == 1

        await eventually(closed_as_slow, timeout=5, what="slow consumer closed")
        assert node.hub.get("slow") is None
        assert seqs(await _send_and_read(box, node, fast, "fast", 3)) == [1, 2, 3]
        got = await slow.expect_closed(timeout=5)
        assert len(got) < len(frames)
    finally:
        await slow.close()
        await fast.close()


async def test_drain(make_node: NodeFactory, clients, nc) -> None:
    node = await make_node(drain_rate=100)
    registry = node.registry
    conns = [await clients(node) for _ in range(3)]
    for i, c in enumerate(conns):
        await c.login(f"user{i}")
    await nc.publish(bus.node_subject(node.id), bus.drain())
    for c in conns:
        assert await c.expect_closed() == [{"t": "kick", "reason": "drain"}]
    await asyncio.wait_for(node.finished.wait(), 5)
    assert node.id not in await registry.snapshot()
    late = await clients(node)
    await late.send({"t": "login", "token": "whatever"})
    assert await late.expect_closed() == [{"t": "kick", "reason": "drain"}]


async def test_drain_announces_draining_at_once(make_node: NodeFactory, clients) -> None:
    node = await make_node(drain_rate=1)
    c = await clients(node)
    await c.login("alice")
    other = await clients(node)
    await other.login("bob")
    await node.drain()
    info = (await node.registry.snapshot())[node.id]
    assert info.state == "draining" and not info.accepting


async def test_registry_record(make_node: NodeFactory, clients) -> None:
    node = await make_node(metrics_port=0, advertise_host="chat.example")
    c = await clients(node)
    await c.login("alice")
    await node.announce()
    info = (await node.registry.snapshot())[node.id]
    assert (info.host, info.port, info.connections, info.state) == ("chat.example", node.port, 1, "up")
    assert info.metrics_port == node.metrics_port and info.metrics_port > 0
    assert info.started_at > 0


async def test_metrics_endpoint(make_node: NodeFactory, clients, box: Inbox) -> None:
    node = await make_node(metrics_port=0)
    c = await clients(node)
    await c.login("alice")
    await box.send(node, "alice", 2)
    await c.recv_msgs(2)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{node.metrics_port}/metrics")).text
    assert "cim_node_connections 1.0" in text
    assert 'cim_node_logins_total{result="ok"} 1.0' in text
    assert 'cim_node_messages_out_total{kind="p2p"} 2.0' in text
    assert "cim_node_delivery_latency_seconds_count 2.0" in text
    assert 'cim_node_frames_in_total{type="login"} 1.0' in text


# ----- helpers ----------------------------------------------------------------------


async def _get_int(redis, key: str, want: int) -> bool:
    value = await redis.get(key)
    return value is not None and int(value) == want


async def _evalsha_calls(redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0)) + int(
        stats.get("cmdstat_eval", {}).get("calls", 0)
    )


async def _send_and_read(box: Inbox, node: NodeServer, client: Client, user: str, n: int) -> list[dict]:
    await box.send(node, user, n)
    return await client.recv_msgs(n)
