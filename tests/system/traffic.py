"""Message traffic for system and fault tests: send, receive, and count what happened.

A ``Ledger`` records every send (by client_msg_id and body) and every receipt,
and at the end says how many were sent, accepted (202), received, dropped as
duplicates by the SDK, and lost, and whether each recipient saw its messages
in seq order with no gap. With several ``devices`` per recipient, each device must get
every message of its user (one missing on one device counts as lost). ``run_with_fault`` is the
fault tests' run: 3 senders, 300 messages, 4 recipients, a fault a third of the way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cim_client import Client, Message
from tests.harness import Cluster


@dataclass
class Ledger:
    sent: int = 0
    accepted: dict[str, str] = field(default_factory=dict)
    """body -> recipient, for every send answered 202."""
    received: dict[str, list[Message]] = field(default_factory=lambda: defaultdict(list))
    """``user/device`` -> what that device got, in order."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    devices: tuple[str, ...] = ("default",)
    """The devices every recipient is online on."""

    def record(self, msg: Message, device: str = "default") -> None:
        self.received[f"{msg.to}/{device}"].append(msg)
        self.progress.set()

    @property
    def received_bodies(self) -> set[str]:
        return {m.body for msgs in self.received.values() for m in msgs}

    @property
    def lost(self) -> set[str]:
        """``body@device`` of every accepted message a device of its recipient did not get."""
        got = {key: {m.body for m in msgs} for key, msgs in self.received.items()}
        return {
            f"{body}@{device}"
            for body, to in self.accepted.items()
            for device in self.devices
            if body not in got.get(f"{to}/{device}", ())
        }

    @property
    def shown_twice(self) -> int:
        return sum(len(msgs) - len({m.seq for m in msgs}) for msgs in self.received.values())

    def order_holds(self) -> bool:
        """Each recipient's seqs strictly increase by one (replay fills every gap)."""
        for msgs in self.received.values():
            seqs = [m.seq for m in msgs if m.seq]
            if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                return False
        return True

    def summary(self, clients: list[Client]) -> dict[str, int]:
        return {
            "sent": self.sent,
            "accepted": len(self.accepted),
            "received": len(self.received_bodies),
            "duplicates_dropped": sum(c.duplicates_dropped for c in clients),
            "lost": len(self.lost),
        }


async def collect(client: Client, ledger: Ledger) -> None:
    """Record everything ``client`` receives until cancelled."""
    async for msg in client.messages():
        ledger.record(msg, client.device)


async def send_with_retry(
    http: httpx.AsyncClient,
    route_urls: list[str],
    token: str,
    to: str,
    body: str,
    ledger: Ledger,
    attempts: int = 100,
) -> None:
    """POST one message; on a transport error or 5xx retry (other routes too) with the same id."""
    ledger.sent += 1
    cmid = uuid.uuid4().hex
    for attempt in range(attempts):
        url = route_urls[attempt % len(route_urls)] + "/api/v1/messages"
        try:
            resp = await http.post(
                url,
                json={"to": to, "body": body, "client_msg_id": cmid},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if resp.status_code == 202:
            ledger.accepted[body] = to
            return
        if resp.status_code < 500:
            raise AssertionError(f"send refused: {resp.status_code} {resp.text}")
        await asyncio.sleep(0.1)


async def wait_received(ledger: Ledger, timeout: float = 20.0) -> None:
    """Wait until every accepted message has been received (or time runs out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while ledger.lost and loop.time() < deadline:
        ledger.progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ledger.progress.wait(), deadline - loop.time())


PASSWORD = "password123"
MESSAGES = 300
SENDERS = ("s1", "s2", "s3")
RECIPIENTS = ("r1", "r2", "r3", "r4")


async def run_with_fault(
    cluster: Cluster,
    fault: Callable[[], Awaitable[None]],
    name: str,
    route_urls: list[str] | None = None,
    transport: str = "tcp",
    devices: tuple[str, ...] = ("default",),
    may_lose: int = 0,
) -> dict[str, int]:
    """Send MESSAGES from senders to recipients (round robin), run ``fault`` a third of the way
    in; every recipient is online on each of ``devices`` (sessions over ``transport``), and
    each device must get everything."""
    route_urls = route_urls or [cluster.route_url]
    tokens = {s: (await cluster.register(s, PASSWORD))["token"] for s in SENDERS}
    for r in RECIPIENTS:
        await cluster.register(r, PASSWORD)
    clients = [
        Client(cluster.route_url, r, PASSWORD, backoff_max=1.0, transport=transport, device=d)
        for r in RECIPIENTS
        for d in devices
    ]
    for c in clients:  # one by one: the balancer spreads a user's devices over the nodes
        await c.connect()
    ledger = Ledger(devices=devices)
    collectors = [asyncio.create_task(collect(c, ledger)) for c in clients]
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:

            async def stream(sender: str, start: int) -> None:
                for i in range(start, MESSAGES, len(SENDERS)):
                    recipient = RECIPIENTS[i % len(RECIPIENTS)]
                    await send_with_retry(http, route_urls, tokens[sender], recipient, f"{name}-{i}", ledger)
                    if i == MESSAGES // 3:
                        await fault()

            await asyncio.wait_for(asyncio.gather(*(stream(s, n) for n, s in enumerate(SENDERS))), timeout=90)
        await wait_received(ledger, timeout=30)
    finally:
        for task in collectors:
            task.cancel()
        await asyncio.gather(*collectors, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients))
    summary = ledger.summary(clients)
    print(f"\n{name}: {json.dumps(summary)}")
    _record(name, summary)
    assert summary["sent"] == MESSAGES
    assert summary["accepted"] == MESSAGES, "every send is eventually accepted (retries with the same id)"
    assert len(ledger.lost) <= may_lose, f"lost: {sorted(ledger.lost)[:10]}"
    assert ledger.shown_twice == 0
    assert ledger.order_holds()
    return summary


def _record(name: str, summary: dict[str, int]) -> None:
    """With CIM_FAULT_COUNTS=FILE, collect the counts there (for docs/guarantees.md)."""
    target = os.environ.get("CIM_FAULT_COUNTS")
    if not target:
        return
    out = Path(target)
    data = json.loads(out.read_text()) if out.exists() else {}
    data[name] = summary
    out.write_text(json.dumps(data, indent=2, sort_keys=True))
