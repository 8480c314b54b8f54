"""A node's connections over real sockets: login, heartbeat, refused frames, duplicate login."""

from __future__ import annotations

import asyncio
import struct

import msgpack

from cim_node.server import NodeServer, ServerState
from shared import bus, sessions, tokens
from shared.keys import Keys, bucket
from shared.protocol import encode
from shared.registry import MemoryRegistry
from shared.scripts import Scripts
from tests.conftest import SECRET
from tests.harness import eventually
from tests.node.conftest import Client, Inbox, NodeFactory, node_settings


async def test_login_welcome_and_ping(node: NodeServer, clients) -> None:
    c = await clients(node)
    welcome = await c.login("alice")
    assert welcome == {"t": "welcome", "user": "alice", "node": node.id, "heartbeat_s": 30, "last_seq": 0}
    await c.send({"t": "ping"})
    assert await c.recv() == {"t": "pong"}
    assert node.hub.get("alice") is not None


async def test_login_claims_session_and_bye_releases_it(node: NodeServer, clients, redis, prefix) -> None:
    keys = Keys(prefix)
    c = await clients(node)
    await c.login("alice")
    conn = node.hub.get("alice")
    [device] = await sessions.devices(redis, keys, "alice")
    assert (device.device, device.node, device.conn) == ("default", node.id, conn.conn_id)
    assert await redis.zscore(keys.online(bucket("alice")), "alice") == 0
    await c.send({"t": "bye"})
    assert await c.expect_closed() == []
    await eventually(lambda: _not(redis.exists(keys.session("alice"))), timeout=3, what="session released")
    assert node.hub.get("alice") is None


async def _not(aw) -> bool:
    return not await aw


async def test_frames_right_behind_login_are_served(node: NodeServer, clients) -> None:
    c = await clients(node)
    token = tokens.issue(SECRET, "alice", 60)[0]
    await c.send_raw(encode({"t": "login", "token": token}) + encode({"t": "ping"}))
    assert (await c.recv())["t"] == "welcome"
    assert await c.recv() == {"t": "pong"}


async def _error_then_close(c: Client) -> dict:
    frames = await c.expect_closed()
    assert len(frames) == 1, frames
    assert frames[0]["t"] == "error"
    return frames[0]


async def _bystander(node: NodeServer, clients) -> Client:
    other = await clients(node)
    await other.login("bystander")
    return other


async def _still_served(other: Client) -> None:
    await other.send({"t": "ping"})
    assert await other.recv() == {"t": "pong"}


async def test_oversize_frame(node: NodeServer, clients) -> None:
    other = await _bystander(node, clients)
    c = await clients(node)
    await c.send_raw(struct.pack(">I", node.settings.max_frame + 1))
    assert (await _error_then_close(c))["code"] == "frame_too_large"
    await _still_served(other)


async def test_not_msgpack(node: NodeServer, clients) -> None:
    other = await _bystander(node, clients)
    c = await clients(node)
    await c.send_raw(struct.pack(">I", 1) + b"\xc1")
    assert (await _error_then_close(c))["code"] == "bad_frame"
    await _still_served(other)


async def test_non_map(node: NodeServer, clients) -> None:
    other = await _bystander(node, clients)
    c = await clients(node)
    body = msgpack.packb([1, 2, 3])
    await c.send_raw(struct.pack(">I", len(body)) + body)
    assert (await _error_then_close(c))["code"] == "bad_frame"
    await _still_served(other)


async def test_unknown_type_after_login(node: NodeServer, clients) -> None:
    other = await _bystander(node, clients)
    c = await clients(node)
    await c.login("alice")
    await c.send({"t": "welcome"})
    assert (await _error_then_close(c))["code"] == "unknown_type"
    await _still_served(other)


async def test_frame_before_login(node: NodeServer, clients) -> None:
    other = await _bystander(node, clients)
    c = await clients(node)
    await c.send({"t": "ping"})
    assert (await _error_then_close(c))["code"] == "not_logged_in"
    await _still_served(other)


async def test_bad_ack_is_bad_frame(node: NodeServer, clients) -> None:
    c = await clients(node)
    await c.login("alice")
    await c.send({"t": "ack", "seq": "x"})
    assert (await _error_then_close(c))["code"] == "bad_frame"


async def test_bad_token_closes_only_that_connection(node: NodeServer, clients) -> None:
    other = await _bystander(node, clients)
    c = await clients(node)
    await c.send({"t": "login", "token": "nope"})
    assert (await _error_then_close(c))["code"] == "bad_token"
    expired = await clients(node)
    await expired.send({"t": "login", "token": tokens.issue(SECRET, "alice", 60, now=1.0)[0]})
    assert (await _error_then_close(expired))["code"] == "bad_token"
    await _still_served(other)
    assert node.hub.get("alice") is None


async def test_revoked_token(node: NodeServer, clients, redis, prefix) -> None:
    token, claims = tokens.issue(SECRET, "alice", 60)
    await redis.set(Keys(prefix).revoked(claims.username, claims.jti), "1", ex=60)
    c = await clients(node)
    await c.send({"t": "login", "token": token})
    frame = await _error_then_close(c)
    assert frame["code"] == "bad_token" and "revoked" in frame["reason"]
    assert node.hub.get("alice") is None


async def test_token_issued_before_the_users_epoch(node: NodeServer, clients, redis, prefix) -> None:
    """A kick that revoked alice's tokens (``DELETE /sessions/alice``) holds at the node too."""
    later, claims = tokens.issue(SECRET, "alice", 60)
    token, _ = tokens.issue(SECRET, "alice", 60, now=claims.issued_at / 1000 - 1)
    await redis.hset(Keys(prefix).token_epoch("alice"), mapping={"at": claims.issued_at, "keep": ""})
    c = await clients(node)
    await c.send({"t": "login", "token": token})
    frame = await _error_then_close(c)
    assert frame["code"] == "bad_token" and "revoked" in frame["reason"]
    c2 = await clients(node)
    await c2.send({"t": "login", "token": later})
    assert (await c2.recv())["t"] == "welcome"


async def test_login_timeout(make_node: NodeFactory, clients) -> None:
    node = await make_node(login_timeout_s=0.2)
    c = await clients(node)
    assert (await _error_then_close(c))["code"] == "login_timeout"


async def test_heartbeat_timeout(make_node: NodeFactory, clients) -> None:
    node = await make_node(heartbeat_s=1)
    quiet, talker = await clients(node), await clients(node)
    await quiet.login("quiet")
    await talker.login("talker")
    loop = asyncio.get_running_loop()
    start = loop.time()
    closed = asyncio.ensure_future(quiet.expect_closed(timeout=6))
    while not closed.done():
        await talker.send({"t": "ping"})
        assert await talker.recv() == {"t": "pong"}
        await asyncio.wait({closed}, timeout=0.5)
    assert await closed == []
    assert 2.9 <= loop.time() - start < 4.5
    await _still_served(talker)


async def test_duplicate_login_on_same_node(node: NodeServer, clients, redis, prefix) -> None:
    first, second = await clients(node), await clients(node)
    await first.login("alice")
    await second.login("alice")
    assert await first.expect_closed() == [{"t": "kick", "reason": "duplicate_login"}]
    await _still_served(second)
    conn = node.hub.get("alice")

    async def session_is_newest() -> bool:
        return [d.conn for d in await sessions.devices(redis, Keys(prefix), "alice")] == [conn.conn_id]

    await eventually(session_is_newest, timeout=3, what="session of the newest login")


async def test_duplicate_login_across_nodes(make_node: NodeFactory, clients, redis, prefix) -> None:
    a, b = await make_node(), await make_node()
    first, second = await clients(a), await clients(b)
    await first.login("alice")
    await second.login("alice")
    assert await first.expect_closed() == [{"t": "kick", "reason": "duplicate_login"}]
    await _still_served(second)
    assert [d.node for d in await sessions.devices(redis, Keys(prefix), "alice")] == [b.id]
    index = Keys(prefix).node_sessions(a.id, bucket("alice"))
    await eventually(lambda: _not(redis.sismember(index, "alice/default")), timeout=3)


async def test_bus_kick_honours_conn_filter(node: NodeServer, clients, nc) -> None:
    c = await clients(node)
    await c.login("alice")
    await nc.publish(bus.node_subject(node.id), bus.kick("alice", "logout", conn="someone-else"))
    await _still_served(c)
    await nc.publish(bus.node_subject(node.id), bus.kick("alice", "revoked"))
    assert await c.expect_closed() == [{"t": "kick", "reason": "revoked"}]


async def test_start_sweeps_leftovers_and_stop_releases_sessions(
    nats_service, redis_service, prefix, redis, clients
) -> None:
    keys = Keys(prefix)
    settings = node_settings(nats_service, redis_service, prefix)
    await sessions.claim(
        redis, Scripts.register(redis), keys, "ghost", "default", settings.node_id, "old-run"
    )
    registry = MemoryRegistry()
    node = NodeServer(settings, registry=registry)
    try:
        await node.start()
        assert not await redis.exists(keys.session("ghost"))
        c = await clients(node)
        await c.login("alice")
        assert await redis.exists(keys.session("alice"))
    finally:
        await node.stop(timeout=5)
    assert node.state is ServerState.STOPPED
    assert not await redis.exists(keys.session("alice"))
    assert await redis.zscore(keys.online(bucket("alice")), "alice") is None
    assert node.id not in await registry.snapshot()
    assert await c.expect_closed() == []


async def test_swept_sessions_of_live_connections_come_back(
    node: NodeServer, clients, redis, prefix, box: Inbox
) -> None:
    """A route that thought this node dead (NATS away past the TTL) swept its sessions; the node
    puts back those of its live connections, and kicks one whose user logged in elsewhere since.
    What was stored for them meanwhile (the route saw no session, so it published nothing) is
    delivered without a new login."""
    keys = Keys(prefix)
    scripts = Scripts.register(redis)
    alice, bob = await clients(node), await clients(node)
    await alice.login("alice")
    await bob.login("bob")
    assert await sessions.sweep_node(redis, scripts, keys, node.id) == 2
    stored = await box.store("alice", 2)  # stored, not published: alice looked offline
    await sessions.claim(redis, scripts, keys, "bob", "default", "other-node", "newer")

    async def alice_back() -> bool:
        return [d.node for d in await sessions.devices(redis, keys, "alice")] == [node.id]

    await eventually(alice_back, timeout=5, what="alice's session restored")
    assert await redis.zscore(keys.online(bucket("alice")), "alice") is not None
    assert [m["seq"] for m in await alice.recv_msgs(2)] == [m["seq"] for m in stored]
    frames = await bob.expect_closed()
    assert frames == [{"t": "kick", "reason": "duplicate_login"}]
    assert [d.node for d in await sessions.devices(redis, keys, "bob")] == ["other-node"]
