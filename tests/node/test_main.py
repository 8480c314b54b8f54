"""``python -m cim_node`` as a process: settings from env, NATS KV registry, SIGTERM drains, exit 0."""

from __future__ import annotations

import asyncio
import resource
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from cim_cli.ops.services import Service, child_env, free_port, wait_for_port
from shared.registry_nats import NatsKvRegistry
from tests.conftest import SECRET
from tests.harness import eventually
from tests.node.conftest import Client


@pytest.fixture
def node_proc(nats_service: Service, redis_service: Service, prefix: str, tmp_path: Path):
    port = free_port()
    node_id = f"p-{secrets.token_hex(4)}"
    env = child_env(
        nats_url=nats_service.url,
        redis_url=redis_service.url,
        redis_prefix=prefix,
        secret=SECRET,
        node_id=node_id,
        node_port=port,
        registry_refresh_s=1,
    )
    log = tmp_path / "node.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cim_node"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_low_open_files_limit,  # the node must raise it itself
        )
    try:
        wait_for_port("127.0.0.1", port, 20.0, proc)
        yield proc, node_id, port, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


LOW_NOFILE = 256


def _low_open_files_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(LOW_NOFILE, hard), hard))


def _open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files line")


async def test_node_raises_its_open_files_limit_to_the_hard_limit(node_proc) -> None:
    proc, _, _, _ = node_proc
    soft, hard = _open_files_limits(proc.pid)
    assert soft == hard >= LOW_NOFILE


async def test_sigterm_drains_withdraws_and_exits_zero(node_proc, nats_service: Service) -> None:
    proc, node_id, port, log = node_proc
    nc = await nats.connect(nats_service.url)
    try:
        registry = await NatsKvRegistry.open(nc.jetstream(), refresh_s=1)

        async def registered() -> bool:
            return node_id in await registry.snapshot()

        await eventually(registered, timeout=10, what="node registered")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = Client(reader, writer)
        welcome = await client.login("alice")
        assert welcome["node"] == node_id
        proc.send_signal(signal.SIGTERM)
        assert await client.expect_closed() == [{"t": "kick", "reason": "drain"}]
        await client.close()
        assert await asyncio.to_thread(proc.wait, 15) == 0, log.read_text()
        assert node_id not in await registry.snapshot()
    finally:
        await nc.close()
