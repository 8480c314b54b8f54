"""A forged or broken registry record is never handed out to a login (contract v0.2)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import msgpack
from nats.aio.client import Client as Nats

from cim_route.nodes import NodeView
from shared.registry import MemoryRegistry, NodeEvent, NodeInfo
from shared.registry_nats import NatsKvRegistry
from tests.harness import eventually
from tests.route.conftest import PASSWORD, MakeRoute

FORGED = [
    NodeInfo(id="Evil", host="6.6.6.6", port=9000),  # breaks the id rule
    NodeInfo(id="evil\nnode", host="6.6.6.6", port=9000),
    NodeInfo(id="evil-port", host="6.6.6.6", port="9000"),  # type: ignore[arg-type]
    NodeInfo(id="evil-zero", host="6.6.6.6", port=0),
    NodeInfo(id="evil-host", host="6.6.6.6", port=9000),  # not in CIM_NODE_HOSTS
]


async def test_forged_records_are_ignored(make_route: MakeRoute) -> None:
    registry = MemoryRegistry()
    route = await make_route(registry=registry, with_node=False, node_hosts=("127.0.0.1",))
    await route.add_node("good-node")
    for info in FORGED:
        await registry.announce(info)
    await registry.announce(NodeInfo(id="good-node", host="127.0.0.1", port=9001))  # a key's record replaced
    await registry.announce(NodeInfo(id="other-id", host="127.0.0.1", port=9002))
    registry._emit(NodeEvent("key-a", NodeInfo(id="key-b", host="127.0.0.1", port=9003)))  # id is not its key
    await route.add_node("last-node")  # events are applied in order: all of the above are seen
    assert sorted(n.id for n in route.ctx.view.listed()) == ["good-node", "last-node", "other-id"]
    await route.http.post("/users", json={"username": "ann", "password": PASSWORD})
    for _ in range(6):
        resp = await route.http.post("/login", json={"username": "ann", "password": PASSWORD})
        assert resp.json()["node"]["host"] == "127.0.0.1"


async def test_unreadable_kv_records_are_ignored(make_route: MakeRoute, nc: Nats) -> None:
    bucket = f"cim-test-{secrets.token_hex(4)}"
    registry = await NatsKvRegistry.open(nc.jetstream(), bucket, refresh_s=1)
    kv = await nc.jetstream().key_value(bucket)
    await kv.put("junk", b"\xc1 not msgpack")
    await kv.put("list", msgpack.packb([1, 2, 3]))
    await kv.put("partial", msgpack.packb({"id": "partial"}))
    await kv.put("forged-id", NodeInfo(id="elsewhere", host="6.6.6.6", port=9000).pack())
    route = await make_route(registry=registry, with_node=False)
    await registry.announce(NodeInfo(id="kv-node", host="127.0.0.1", port=9100))

    async def seen() -> bool:
        return route.ctx.view.get("kv-node") is not None

    await eventually(seen, timeout=5, what="kv-node in view")
    assert [n.id for n in route.ctx.view.listed()] == ["kv-node"]
    assert sorted(await registry.snapshot()) == ["forged-id", "kv-node"]  # readable; the view checks it
    await nc.jetstream().delete_key_value(bucket)


async def test_a_view_that_has_not_loaded_the_registry_yet_reads_it_before_no_nodes() -> None:
    """A route worker that just started must not answer ``no_nodes`` while the registry lists nodes."""
    registry = MemoryRegistry()
    view = NodeView(registry, on_gone=_never_gone, hosts=("127.0.0.1",))  # its watch is not running
    await registry.announce(NodeInfo(id="early-node", host="127.0.0.1", port=9001))
    await registry.announce(NodeInfo(id="evil-host", host="6.6.6.6", port=9000))
    assert view.accepting() == []
    assert [n.id for n in await view.accepting_now()] == ["early-node"]  # checked like a watched record
    await view.loaded(timeout=0.5)  # the registry was read: no wait now
    assert [n.id for n in await NodeView(MemoryRegistry(), on_gone=_never_gone).accepting_now()] == []


async def test_a_running_view_is_loaded_once_it_read_the_registry() -> None:
    registry = MemoryRegistry()
    await registry.announce(NodeInfo(id="early-node", host="127.0.0.1", port=9001))
    view = NodeView(registry, on_gone=_never_gone)
    task = asyncio.create_task(view.run())
    try:
        async with asyncio.timeout(5):
            await view.loaded(timeout=5)
        assert [n.id for n in view.listed()] == ["early-node"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _never_gone(node_id: str) -> None:
    raise AssertionError(f"{node_id} was never there")
