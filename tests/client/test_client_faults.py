"""The SDK when its node dies: reconnect through the route, replay after last_seq, no duplicates."""

from __future__ import annotations

import pytest

from cim_client import ConnectionState
from tests.client.helpers import user
from tests.harness import Cluster


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_reconnect_after_node_sigkill_delivers_once(cluster: Cluster, transport: str) -> None:
    states: list[ConnectionState] = []
    async with (
        user(cluster, "gina") as sender,
        user(cluster, "hank", on_state=lambda s, d: states.append(s), transport=transport) as hank,
    ):
        first = await sender.send("hank", "before")
        assert (await hank.next_message(5)).body == "before"
        assert hank.node is not None
        await cluster.nodes[hank.node.id].kill()
        await hank.wait_for_state(ConnectionState.RECONNECTING, 10)
        bodies = [f"during-{i}" for i in range(5)]
        for body in bodies:
            await sender.send("hank", body)  # stored while hank has no node
        got = [await hank.next_message(15) for _ in bodies]
        assert [m.body for m in got] == bodies
        assert [m.seq for m in got] == list(range(first.seq + 1, first.seq + 6))
        assert hank.state is ConnectionState.READY
        assert ConnectionState.RECONNECTING in states and states[-1] is ConnectionState.READY
        with pytest.raises(TimeoutError):
            await hank.next_message(0.5)  # nothing twice


async def test_reconnect_resends_last_seq(cluster: Cluster) -> None:
    """Messages taken but not yet acked come again after a reconnect; the SDK drops them."""
    async with user(cluster, "ivan") as sender, user(cluster, "judy") as judy:
        for i in range(3):
            await sender.send("judy", f"x{i}")
        got = [await judy.next_message(5) for _ in range(3)]
        assert judy.last_seq == got[-1].seq == 3
        assert judy.node is not None
        await cluster.nodes[judy.node.id].kill()  # before the batched ack could reach Redis, possibly
        await sender.send("judy", "after")
        nxt = await judy.next_message(15)
        assert (nxt.seq, nxt.body) == (4, "after")
        with pytest.raises(TimeoutError):
            await judy.next_message(0.3)
