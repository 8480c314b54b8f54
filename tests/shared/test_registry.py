"""One suite for every NodeRegistry: the in-memory one and the NATS KV one."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from cim_cli.ops.services import Service, start_nats
from shared.registry import MemoryRegistry, NodeEvent, NodeInfo, NodeRegistry
from shared.registry_nats import NatsKvRegistry


@pytest.fixture(params=["memory", "nats"])
async def registry(request: pytest.FixtureRequest, nats_service: Service) -> AsyncIterator[NodeRegistry]:
    if request.param == "memory":
        yield MemoryRegistry()
        return
    nc = await nats.connect(nats_service.url)
    try:
        yield await NatsKvRegistry.open(nc.jetstream(), f"test-{secrets.token_hex(4)}", refresh_s=1)
    finally:
        await nc.close()


def _info(node_id: str, connections: int = 0, state: str = "up") -> NodeInfo:
    return NodeInfo(id=node_id, host="127.0.0.1", port=9000, connections=connections, state=state)


async def _next(events: AsyncIterator[NodeEvent]) -> NodeEvent:
    return await asyncio.wait_for(anext(events), 5)


async def test_announce_then_snapshot_and_watch(registry: NodeRegistry) -> None:
    await registry.announce(_info("n-1"))
    assert set(await registry.snapshot()) == {"n-1"}

    events = registry.watch()
    first = await _next(events)
    assert first == NodeEvent("n-1", _info("n-1"))

    await registry.announce(_info("n-1", connections=5, state="draining"))
    update = await _next(events)
    assert update.info is not None and update.info.connections == 5 and not update.info.accepting

    await registry.withdraw("n-1")
    gone = await _next(events)
    assert gone == NodeEvent("n-1", None)
    assert await registry.snapshot() == {}
    await events.aclose()


async def test_record_round_trips_every_field() -> None:
    info = NodeInfo(
        id="a", host="h", port=1, connections=2, state="draining", started_at=3, metrics_port=4, ws_port=5
    )
    assert NodeInfo.unpack(info.pack()) == info


def test_ws_url_names_the_websocket_listener_or_none() -> None:
    assert NodeInfo(id="a", host="10.0.0.1", port=1, ws_port=8443).ws_url == "ws://10.0.0.1:8443/ws"
    assert NodeInfo(id="a", host="::1", port=1, ws_port=80).ws_url == "ws://[::1]:80/ws"
    assert NodeInfo(id="a", host="10.0.0.1", port=1).ws_url is None


async def test_node_that_stops_refreshing_disappears_within_three_periods(nats_service: Service) -> None:
    nc = await nats.connect(nats_service.url)
    try:
        registry = await NatsKvRegistry.open(nc.jetstream(), f"test-{secrets.token_hex(4)}", refresh_s=1)
        await registry.announce(_info("dying"))
        events = registry.watch()
        assert (await _next(events)).info is not None
        started = time.monotonic()
        gone = await asyncio.wait_for(anext(events), 10)
        elapsed = time.monotonic() - started
        assert gone == NodeEvent("dying", None)
        assert elapsed <= 3 * 1 + 1.5, elapsed
        assert await registry.snapshot() == {}
        await events.aclose()
    finally:
        await nc.close()


async def test_refreshed_node_stays(nats_service: Service) -> None:
    nc = await nats.connect(nats_service.url)
    try:
        registry = await NatsKvRegistry.open(nc.jetstream(), f"test-{secrets.token_hex(4)}", refresh_s=1)
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            await registry.announce(_info("alive"))
            await asyncio.sleep(1)  # the refresh period itself: this is what is under test
        assert set(await registry.snapshot()) == {"alive"}
    finally:
        await nc.close()


async def test_watch_recovers_after_nats_restart(tmp_path: Path) -> None:
    """A restarted NATS drops the watcher's consumer silently; the watch must notice and catch up."""
    service = start_nats(tmp_path)
    nc = await nats.connect(service.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        registry = await NatsKvRegistry.open(nc.jetstream(), "cim-nodes", refresh_s=1)
        await registry.announce(_info("old"))
        events = registry.watch()
        assert (await _next(events)).node_id == "old"

        service.stop()
        service.start()  # same port, store and users

        async def announce_new() -> None:
            while True:
                with contextlib.suppress(nats.errors.Error):
                    await registry.announce(_info("new"))
                await asyncio.sleep(1)  # the refresh period of a live node

        refresher = asyncio.create_task(announce_new())
        try:
            seen: dict[str, bool] = {}
            async with asyncio.timeout(15):
                while seen.get("new") is not True or seen.get("old") is not False:
                    event = await anext(events)
                    seen[event.node_id] = event.info is not None
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        async with asyncio.timeout(10):  # the test fails, not hangs, if closing does
            await events.aclose()
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await nc.close()
        service.stop()
