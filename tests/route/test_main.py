"""``python -m cim_route``: serves on CIM_ROUTE_PORT, exits 0 on SIGTERM; the NATS KV registry."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from nats.aio.client import Client as Nats

from cim_cli.ops.services import Service, child_env, free_port
from shared.registry import NodeInfo
from shared.registry_nats import NatsKvRegistry
from tests.harness import eventually
from tests.route.conftest import PASSWORD, MakeRoute, route_env, start_route_process, stop_process


def test_entry_point_serves_and_stops_cleanly(
    nats_service: Service, redis_service: Service, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = route_env(
        nats_service,
        redis_service,
        port,
        redis_prefix=prefix,
    )
    log = tmp_path / "route.log"
    proc = start_route_process(env, log, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/healthz").status_code == 200
            resp = http.get("/readyz")
            assert resp.status_code == 503 and resp.json()["error"] == "unavailable"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        stop_process(proc)


def test_bad_settings_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cim_route"], env=child_env(secret="short"), capture_output=True, timeout=30
    )
    assert proc.returncode == 2 and b"CIM_SECRET" in proc.stderr


async def test_with_nats_kv_registry(make_route: MakeRoute, nc: Nats) -> None:
    registry = await NatsKvRegistry.open(nc.jetstream(), f"cim-test-{secrets.token_hex(4)}", refresh_s=1)
    route = await make_route(registry=registry, with_node=False)
    node = NodeInfo(id="kv-node", host="10.0.0.1", port=9100, started_at=5, ws_port=9101)
    await registry.announce(node)
    await eventually(lambda: _view_has(route, "kv-node"), timeout=5)
    await route.http.post("/users", json={"username": "ann", "password": PASSWORD})
    resp = await route.http.post("/login", json={"username": "ann", "password": PASSWORD})
    assert resp.json()["node"] == {
        "id": "kv-node",
        "host": "10.0.0.1",
        "port": 9100,
        "ws_url": "ws://10.0.0.1:9101/ws",
        "tls": False,
    }
    assert (await route.root.get("/readyz")).status_code == 200
    await registry.withdraw("kv-node")
    await eventually(lambda: _view_lacks(route, "kv-node"), timeout=5)
    assert (
        await route.http.post("/login", json={"username": "ann", "password": PASSWORD})
    ).status_code == 503
    await nc.jetstream().delete_key_value(registry._bucket)


async def _view_has(route, node_id: str) -> bool:
    return route.ctx.view.get(node_id) is not None


async def _view_lacks(route, node_id: str) -> bool:
    return route.ctx.view.get(node_id) is None
