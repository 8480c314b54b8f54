"""The clients of ``test_hosts.py``, run on the clients' host (``ip netns exec``).

``python -m tests.system.hosts_client CONFIG`` (CONFIG: JSON ``{route, api_key, users, nodes,
timeout}``) waits until the route lists ``nodes``, registers and connects ``users`` (one
``cim_client.Client`` each, its messages collected as they arrive), makes them a group, then
runs two rounds: in each every user sends a p2p message to every other user and one to the
group, and the round ends once every recipient received every message accepted. It prints one
JSON line after each round and, between them, waits for a line on stdin naming the node that
was killed: the second round starts at once, and it also waits until the clients of that node
are back on another node. The last line holds everything the test checks: ``nodes`` (each
user's node per round), ``accepted`` (message id -> recipients), ``received`` (user -> ids in
arrival order), ``duplicates`` (what each SDK dropped as seen before), ``back_s`` (from the
kill until every client was on a live node again) and ``accepted_while_away`` (messages to the
dead node's users accepted before that). A wait that passes ``timeout`` ends it non-zero
(an ``AssertionError`` on stderr), without that line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from cim_client import CimApiError, Client, ConnectionState
from tests.harness import eventually

__all__ = ["main"]

PASSWORD = "password123"
GROUP = "hosts"


async def _until(check: Callable[[], bool], deadline: float, what: str) -> None:
    """Until ``check()`` is true; ``AssertionError`` at ``deadline`` (``time.monotonic()``)."""

    async def checked() -> bool:
        return check()

    await eventually(checked, timeout=deadline - time.monotonic(), what=what)


async def _route_lists(route: str, api_key: str, nodes: set[str], deadline: float) -> None:
    async with httpx.AsyncClient(timeout=2.0) as http:

        async def listed() -> bool:
            try:
                answer = await http.get(f"{route}/api/v1/nodes", headers={"X-API-Key": api_key})
            except httpx.TransportError:
                return False
            return answer.status_code == 200 and nodes <= {n["id"] for n in answer.json()}

        await eventually(
            listed, timeout=deadline - time.monotonic(), what=f"the route to list {sorted(nodes)}"
        )


async def _accepted(send: Callable[[str], Awaitable[str]], deadline: float) -> str:
    """The id of a send, retried under one ``client_msg_id`` while the route answers 503 or
    cannot be reached (safe: the route stores it at most once)."""
    client_msg_id = secrets.token_hex(8)
    while True:
        try:
            return await send(client_msg_id)
        except (CimApiError, httpx.TransportError) as exc:
            if (isinstance(exc, CimApiError) and exc.status != 503) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


class Clients:
    """The users' clients, what they sent and what they received."""

    def __init__(self, route: str, users: list[str]) -> None:
        self.clients = {user: Client(route, user, PASSWORD) for user in users}
        self.accepted: dict[str, list[str]] = {}
        self.accepted_at: dict[str, float] = {}
        self.received: dict[str, list[str]] = {user: [] for user in users}
        self.readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for client in self.clients.values():
            await client.register()
        await asyncio.gather(*(client.connect() for client in self.clients.values()))
        for user, client in self.clients.items():
            self.readers.append(asyncio.create_task(self._read(user, client)))
        first, *others = self.clients
        await self.clients[first].create_group(GROUP, others)

    async def _read(self, user: str, client: Client) -> None:
        async for message in client.messages():
            self.received[user].append(message.id)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)

    def nodes(self) -> dict[str, str | None]:
        return {user: client.node.id if client.node else None for user, client in self.clients.items()}

    async def round(self, name: str, deadline: float) -> None:
        """Every user sends to every other user and to the group, all senders at once."""
        await asyncio.gather(*(self._sends(user, name, deadline) for user in self.clients))

    async def _sends(self, sender: str, name: str, deadline: float) -> None:
        client = self.clients[sender]
        for to in self.clients:
            if to != sender:
                body = f"{name}: {sender} to {to}"
                msg_id = await _accepted(
                    lambda cid, to=to, body=body: self._p2p(client, to, body, cid), deadline
                )
                self._took(msg_id, [to])
        body = f"{name}: {sender} to the group"
        msg_id = await _accepted(lambda cid: self._group(client, body, cid), deadline)
        self._took(msg_id, [user for user in self.clients if user != sender])

    def _took(self, msg_id: str, recipients: list[str]) -> None:
        self.accepted[msg_id] = recipients
        self.accepted_at[msg_id] = time.monotonic()

    def while_away(self, users: set[str], gone: float, back: float) -> int:
        """How many messages to ``users`` were accepted between times ``gone`` and ``back``."""
        return sum(
            1 for m, to in self.accepted.items() if gone <= self.accepted_at[m] < back and users & set(to)
        )

    @staticmethod
    async def _p2p(client: Client, to: str, body: str, client_msg_id: str) -> str:
        return (await client.send(to, body, client_msg_id=client_msg_id)).id

    @staticmethod
    async def _group(client: Client, body: str, client_msg_id: str) -> str:
        return (await client.send_group(GROUP, body, client_msg_id=client_msg_id))["id"]

    def all_received(self) -> bool:
        return all(msg_id in self.received[user] for msg_id, users in self.accepted.items() for user in users)

    def on_a_live_node(self, dead: str) -> bool:
        return all(
            c.state is ConnectionState.READY and c.node is not None and c.node.id != dead
            for c in self.clients.values()
        )


async def _run(config: dict[str, Any], clients: Clients) -> None:
    timeout = float(config["timeout"])
    await _route_lists(config["route"], config["api_key"], set(config["nodes"]), time.monotonic() + timeout)
    await clients.start()
    nodes = {"before": clients.nodes()}
    await clients.round("before", time.monotonic() + timeout)
    await _until(clients.all_received, time.monotonic() + timeout, "the first round's messages")
    print(json.dumps({"round": "before", "nodes": nodes["before"]}), flush=True)
    dead = (await asyncio.to_thread(sys.stdin.readline)).strip()
    killed, deadline = time.monotonic(), time.monotonic() + timeout
    async with asyncio.TaskGroup() as group:
        back = group.create_task(_until_back(clients, dead, deadline))
        group.create_task(clients.round("after", deadline))
    await _until(clients.all_received, deadline, "every message")
    nodes["after"] = clients.nodes()
    away = {user for user, node in nodes["before"].items() if node == dead}
    report = {
        "nodes": nodes,
        "accepted": clients.accepted,
        "received": clients.received,
        "duplicates": {user: c.duplicates_dropped for user, c in clients.clients.items()},
        "back_s": round(back.result() - killed, 3),
        "accepted_while_away": clients.while_away(away, killed, back.result()),
    }
    print(json.dumps({"round": "after", **report}), flush=True)


async def _until_back(clients: Clients, dead: str, deadline: float) -> float:
    """When every client is connected to a node other than ``dead`` again."""
    await _until(lambda: clients.on_a_live_node(dead), deadline, f"every client off {dead}")
    return time.monotonic()


async def main(config: dict[str, Any]) -> None:
    clients = Clients(config["route"], list(config["users"]))
    try:
        await _run(config, clients)
    finally:
        await clients.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
