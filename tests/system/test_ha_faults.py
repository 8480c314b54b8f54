"""The delivery-guarantee fault runs on the HA rig (issue 11): the route and two nodes on a
3-server NATS cluster and a Redis Cluster of 3 masters with a replica each, 3 senders × 300
messages retried with the same ``client_msg_id``, 4 SDK recipients, the fault a third of the way
in. Lost must be 0 and nothing shown twice (``tests.system.traffic.run_with_fault``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.keys import Keys
from tests.ha_rig import HaRig
from tests.system.traffic import MESSAGES, SENDERS, run_with_fault


@pytest.fixture
async def ha_fault_rig(tmp_path: Path) -> AsyncIterator[HaRig]:
    async with HaRig(tmp_path, rate_limit="0") as rig:
        await rig.start(nodes=2)
        yield rig


async def test_ha_the_route_s_nats_server_killed(ha_fault_rig: HaRig) -> None:
    server = await ha_fault_rig.nats_server_of("route")

    async def kill_it() -> None:
        await ha_fault_rig.kill_nats(server)

    await run_with_fault(ha_fault_rig, kill_it, "ha_nats_server_sigkill")


async def test_ha_the_redis_master_of_a_recipient_killed(ha_fault_rig: HaRig) -> None:
    """Its replica takes over. Without ``CIM_REDIS_WAIT`` (not on a cluster yet) replication is
    asynchronous: what the master accepted in its last moment may not have reached the replica,
    at most one message per sender in flight; anything more would be cim's loss, not Redis's."""
    master = await ha_fault_rig.redis_master_for(Keys("cim:").inbox("r1"))

    async def kill_it() -> None:
        await ha_fault_rig.kill_redis(master)

    summary = await run_with_fault(ha_fault_rig, kill_it, "ha_redis_master_sigkill", may_lose=len(SENDERS))
    assert summary["received"] >= MESSAGES - len(SENDERS)


async def test_ha_a_slot_of_a_recipient_moved_to_another_master(ha_fault_rig: HaRig) -> None:
    """Resharding under load: the slot of r1's keys moves to another master (MIGRATING /
    IMPORTING, MIGRATE, SETSLOT NODE) while the senders send; the clients follow the MOVED and
    ASK redirections and nothing is lost."""

    key = Keys("cim:").inbox("r1")
    before = await ha_fault_rig.redis_master_for(key)
    moved_to: list[str] = []

    async def move_it() -> None:
        moved_to.append(await ha_fault_rig.migrate_slot_of_user("r1"))

    await run_with_fault(ha_fault_rig, move_it, "ha_slot_migrated")
    assert moved_to and moved_to[0] != before
    assert await ha_fault_rig.redis_master_for(key) == moved_to[0]  # every member agrees
