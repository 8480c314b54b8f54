"""Message traffic for system and fault tests: send, receive, and count what happened.

A ``Ledger`` records every send (by client_msg_id and body) and every receipt,
and at the end says how many were sent, accepted (202), received, dropped as
duplicates by the SDK, and lost, and whether each recipient saw its messages
in seq order with no gap. With several ``devices`` per recipient, each device must get
every message of its user (one missing on one device counts as lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from cim_client import Client, Message


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
    attempts: int = 40,
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
