"""``python -m cim_route`` with ``CIM_ROUTE_WORKERS=2``: two processes share the port, every
request is counted in ``/metrics`` whichever worker served it, a delayed message fires once,
and SIGTERM stops everything with exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from cim_cli.ops.services import Service, free_port
from shared import tokens
from shared.inbox import read_after
from shared.keys import Keys
from tests.conftest import SECRET
from tests.harness import eventually
from tests.route.conftest import PASSWORD, route_env, start_route_process, stop_process


@dataclass
class Workers:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]


@pytest.fixture
async def workers(
    nats_service: Service, redis_service: Service, prefix: str, tmp_path: Path
) -> AsyncIterator[Workers]:
    port = free_port()
    env = route_env(
        nats_service,
        redis_service,
        port,
        redis_prefix=prefix,
        route_workers=2,
        scheduler_poll_ms=50,
        scrypt_n=1024,
        rate_limit=0,
    )
    log = tmp_path / "route.log"
    proc = start_route_process(env, log, port)
    try:
        w = Workers(proc, port, log)
        await eventually(lambda: _all_listening(w), timeout=20, what="both workers listening")
        yield w
    finally:
        await asyncio.to_thread(stop_process, proc)


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def _all_listening(w: Workers) -> bool:
    return len(w.pids()) == 2 and all(_listening_inodes(pid, w.port) for pid in w.pids())


def _tcp_sockets(port: int) -> dict[int, str]:
    """inode -> state (hex, 0A listening, 01 established) of the TCP sockets on local ``port``."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            found[int(fields[9])] = fields[3]
    return found


def _inodes(pid: int) -> set[int]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if m := re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}")):
                out.add(int(m[1]))
    return out


def _listening_inodes(pid: int, port: int) -> set[int]:
    return {i for i, state in _tcp_sockets(port).items() if state == "0A"} & _inodes(pid)


def _established(pid: int, port: int) -> int:
    return len({i for i, state in _tcp_sockets(port).items() if state == "01"} & _inodes(pid))


def _token(user: str) -> dict[str, str]:
    token, _ = tokens.issue(SECRET, user, 3600)
    return {"Authorization": f"Bearer {token}"}


def _counted(text: str, pattern: str) -> float:
    return sum(float(m[1]) for m in re.finditer(pattern + r" ([0-9.e+]+)", text))


async def _register(http: httpx.AsyncClient, *names: str) -> None:
    for name in names:
        resp = await http.post("/api/v1/users", json={"username": name, "password": PASSWORD})
        assert resp.status_code == 201, resp.text


async def test_each_worker_serves_and_metrics_count_all(workers: Workers) -> None:
    async with httpx.AsyncClient(base_url=workers.url) as http:
        await _register(http, "ann", "bob")
    clients = [httpx.AsyncClient(base_url=workers.url) for _ in range(16)]
    try:
        answers = await asyncio.gather(
            *(
                c.post("/api/v1/messages", json={"to": "bob", "body": "hi"}, headers=_token("ann"))
                for c in clients
            )
        )
        assert [a.status_code for a in answers] == [202] * 16
        assert sorted(a.json()["seq"] for a in answers) == list(range(1, 17))
        # 16 connections kept open, hashed over the two workers' sockets: each worker holds some
        held = {pid: _established(pid, workers.port) for pid in workers.pids()}
        assert sum(held.values()) == 16 and all(held.values()), held
        text = (await clients[0].get("/metrics")).text
    finally:
        for c in clients:
            await c.aclose()
    assert (
        _counted(text, r'cim_route_requests_total\{method="POST",route="/api/v1/messages",status="202"\}')
        == 16
    )
    assert _counted(text, r'cim_route_messages_total\{kind="p2p"\}') == 16


async def test_a_delayed_message_fires_once_with_two_workers(
    workers: Workers, redis: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    async with httpx.AsyncClient(base_url=workers.url) as http:
        await _register(http, "ann", "bob")
        for i in range(20):
            msg = {"to": "bob", "body": f"later {i}", "delay_ms": 200}
            resp = await http.post("/api/v1/messages", json=msg, headers=_token("ann"))
            assert resp.status_code == 202 and resp.json()["status"] == "scheduled", resp.text

        async def all_fired() -> bool:
            return await redis.zcard(keys.delayed) == 0

        await eventually(all_fired, timeout=10, what="every delayed message fired")
        frames = await read_after(redis, keys, "bob", 0)
        assert sorted(f["body"] for f in frames) == sorted(f"later {i}" for i in range(20))
        assert [f["seq"] for f in frames] == list(range(1, 21))
        text = (await http.get("/metrics")).text
    assert _counted(text, r"cim_route_delayed_fired_total") == 20


async def test_sigterm_stops_every_worker_with_exit_0(workers: Workers) -> None:
    pids = workers.pids()
    workers.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(workers.proc.wait, 20) == 0, workers.log.read_text()
    assert all(_gone(pid) for pid in pids)
