"""``cim up --ha`` end to end, as a user runs it: the NATS cluster and the Redis Cluster it
prints, messages over them, a Redis master SIGKILLed (its replica takes over, the supervisor
brings the member back as a replica), Ctrl-C, nothing left behind.

The route and the nodes keep their data in the Redis Cluster here: this passes once every Redis
key and Lua script of cim is single-slot and the route and the nodes use the cluster client
(branch ``keys``); ``tests/system/test_ha_rig.py`` covers the servers and the NATS faults without.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from pathlib import Path

import httpx

from cim_client import AdminClient, CimApiError, Client
from tests.cli.test_launcher import PASSWORD, Up, _descendants, _env, _none_alive, _parent, _program
from tests.harness import eventually, first_message


async def _send_until_accepted(sender: Client, to: str, body: str) -> str:
    """Send until the route accepts (202): while the cluster replaces a member, a send may
    be refused (503 ``unavailable``); a retry with the same ``client_msg_id`` is safe."""
    client_msg_id = secrets.token_hex(8)

    async def accepted() -> str | None:
        try:
            return (await sender.send(to, body, client_msg_id=client_msg_id)).id
        except CimApiError as exc:
            assert exc.status == 503, exc
            return None

    return await eventually(accepted, timeout=20, interval=0.3, what=f"{body!r} accepted")


async def _received(client: Client, count: int, timeout: float = 10.0) -> list[str]:
    """The ids of up to ``count`` messages that arrive within ``timeout`` s of each other."""
    ids: list[str] = []
    with contextlib.suppress(TimeoutError):
        while len(ids) < count:
            ids.append((await client.next_message(timeout)).id)
    return ids


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
            await first_message(alice, bob, "over the clusters")

            # A Redis member SIGKILLed: the cluster goes on (its replica, if it was a master),
            # cim up starts it again, and messages still flow.
            children = _descendants(up.proc.pid)
            redis = sorted(p for p in children if _program(p) == "redis-server" and _parent(p) == up.proc.pid)
            assert len(redis) == 6
            os.kill(redis[0], signal.SIGKILL)
            assert re.fullmatch(r"cim up: redis-\d \(pid \d+\) exited \(code -9\); .*", await up.report())
            assert re.fullmatch(r"cim up: redis-\d restarted \(pid \d+\)", await up.report(timeout=15))

            accepted = [await _send_until_accepted(alice, "bob", f"after the kill {i}") for i in range(3)]
            live = await _received(bob, len(accepted), timeout=5.0)
        # What was not delivered live waits in bob's inbox: none lost, in order.
        async with Client(up.route_url, "bob", PASSWORD) as again:
            await again.connect()
            later = await _received(again, len(accepted) - len(live), timeout=5.0)
        assert len(set(live)) == len(live)
        assert list(dict.fromkeys(i for i in live + later if i in accepted)) == accepted

        children = _descendants(up.proc.pid)
        code, stderr = await up.interrupt()
        assert code == 0, stderr
        await eventually(_none_alive(children), timeout=10, what="no child left")
    finally:
        await up.kill()
