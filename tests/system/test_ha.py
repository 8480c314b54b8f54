"""``cim up --ha`` end to end, as a user runs it: the NATS cluster and the Redis Cluster it
prints, messages over them, a Redis master SIGKILLed (its replica takes over, the supervisor
brings the member back as a replica), Ctrl-C, nothing left behind.

The route and the nodes keep their data in the Redis Cluster here: this passes once every Redis
key and Lua script of cim is single-slot and the route and the nodes use the cluster client
(branch ``keys``); ``tests/system/test_ha_rig.py`` covers the servers and the NATS faults without.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx

from cim_client import AdminClient, Client
from tests.cli.test_launcher import PASSWORD, Up, _descendants, _env, _none_alive, _parent, _program
from tests.harness import eventually


def _members(line: str, what: str, count: int) -> list[int]:
    """The ports of ``what: 127.0.0.1:P1,127.0.0.1:P2,...`` (``count`` of them)."""
    match = re.fullmatch(rf"{what}: ((?:127\.0\.0\.1:\d+,?)+)", line)
    assert match, line
    ports = [int(a.rpartition(":")[2]) for a in match.group(1).split(",")]
    assert len(ports) == count, line
    return ports


async def test_up_ha_serves_over_both_clusters_survives_a_redis_master_kill_and_stops_everything(
    tmp_path: Path,
) -> None:
    up = Up(tmp_path / "data", _env(), "--ha")
    try:
        await up.start()
        assert up.lines[-1] == "ready" and set(up.nodes) == {"node-1", "node-2"}
        _members(up.lines[2], "nats", 3)
        _members(up.lines[3], "redis", 6)
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
        async with httpx.AsyncClient() as http:
            assert (await http.get(up.route_url + "/healthz")).status_code == 200
            assert (await http.get(up.route_url + "/readyz")).status_code == 200
        async with AdminClient(up.route_url, up.api_key) as admin:
            assert {n["id"] for n in await admin.nodes()} == {"node-1", "node-2"}

        async with (
            Client(up.route_url, "alice", PASSWORD) as alice,
            Client(up.route_url, "bob", PASSWORD) as bob,
        ):
            for c in (alice, bob):
                await c.register()
                await c.connect()
            sent = await alice.send("bob", "over the clusters")
            got = await bob.next_message(10)
            assert (got.id, got.sender, got.body) == (sent.id, "alice", "over the clusters")

            # A Redis member SIGKILLed: the cluster goes on (its replica, if it was a master),
            # cim up starts it again, and messages still flow.
            children = _descendants(up.proc.pid)
            redis = sorted(p for p in children if _program(p) == "redis-server" and _parent(p) == up.proc.pid)
            assert len(redis) == 6
            os.kill(redis[0], signal.SIGKILL)
            assert re.fullmatch(r"cim up: redis-\d \(pid \d+\) exited \(code -9\); .*", await up.report())
            assert re.fullmatch(r"cim up: redis-\d restarted \(pid \d+\)", await up.report(timeout=15))

            async def delivered() -> bool:
                try:
                    sent = await alice.send("bob", "after the kill")
                except Exception:  # the cluster may be electing a new master for a moment
                    return False
                return (await bob.next_message(10)).id == sent.id

            await eventually(delivered, timeout=20, interval=0.5, what="a message after the kill")

        children = _descendants(up.proc.pid)
        code, stderr = await up.interrupt()
        assert code == 0, stderr
        await eventually(_none_alive(children), timeout=10, what="no child left")
    finally:
        await up.kill()
