"""Caps on connections that have not logged in yet: in total and per client address (issue 10,
item 6). Past a cap a new connection is closed at once; a login frees its place."""

from __future__ import annotations

import asyncio

from cim_node.pending import PendingLogins
from cim_node.server import NodeServer
from tests.node.conftest import Client, NodeFactory


async def _open(node: NodeServer, source: str = "127.0.0.1") -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port, local_addr=(source, 0))
    return Client(reader, writer)


async def _closed_at_once(client: Client) -> bool:
    """Whether the node closed the connection without a word (EOF or reset within 2 s)."""
    try:
        async with asyncio.timeout(2):
            return await client.reader.read(1) == b""
    except ConnectionResetError:
        return True


async def _served(client: Client) -> bool:
    """Whether the node still serves it: a ping before login gets ``not_logged_in``, not EOF."""
    await client.send({"t": "ping"})
    frame = await client.recv()
    return frame.get("code") == "not_logged_in"


async def test_one_address_holds_at_most_its_share(make_node: NodeFactory) -> None:
    node = await make_node(max_pending_per_address=3, max_pending=100)
    waiting = [await _open(node) for _ in range(3)]
    refused = await _open(node)
    assert await _closed_at_once(refused)
    other = await _open(node, "127.0.0.2")  # another address still gets in
    await other.login("ann")
    # A login frees its place at once: the next one from the first address is taken.
    await waiting[0].login("bob")
    again = await _open(node)
    assert await _served(again)
    for c in [*waiting, refused, other, again]:
        await c.close()


async def test_all_addresses_together_hold_at_most_the_total(make_node: NodeFactory) -> None:
    node = await make_node(max_pending_per_address=64, max_pending=4)
    waiting = [await _open(node, f"127.0.0.{i}") for i in range(1, 5)]
    refused = await _open(node, "127.0.0.9")
    assert await _closed_at_once(refused)
    # One the node closed (a frame before login) frees its place too.
    assert await _served(waiting[0])
    await waiting[0].expect_closed()
    later = await _open(node, "127.0.0.9")
    assert await _served(later)
    for c in [*waiting, refused, later]:
        await c.close()


def test_the_counts_come_back_to_zero() -> None:
    pending = PendingLogins(total=2, per_address=1)
    assert pending.admit("a") and not pending.admit("a") and pending.admit("b")
    assert not pending.admit("c")  # the total
    pending.leave("a")
    assert pending.admit("c") and len(pending) == 2
    pending.leave("b")
    pending.leave("c")
    assert len(pending) == 0 and pending.admit("a")
