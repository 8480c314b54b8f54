"""``cim bench fanout``: bursts of messages to a group of connected members (or to ``"*"``).

``members`` users log in on raw frames; one more user creates a group of all
of them. Each of ``bursts`` bursts sends ``burst_size`` group messages at once
(a connection each) and waits until every member has every one of them (or
``grace`` s). **deliveries/s** is all deliveries over the summed burst times
(first send to last receipt); **time to all members** is, per message, from
its send to its receipt by the last member. ``--push-all`` sends ``POST
/push {to: "*"}`` with the API key instead: every online user, nothing stored.
CPU is per delivery. ``--baseline`` (stored group only) also measures both
baselines with the member list in each message (``{to: [names], body}``):
bare publishes one NATS message per member, ideal also stores each in one
Redis pipeline (``INCR`` + ``XADD`` per member).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Callable

from cim_cli.bench.cpu import CpuWindow
from cim_cli.bench.p2p import latency_figures
from cim_cli.bench.rawhttp import HttpConnection, HttpError
from cim_cli.bench.receipts import Receipts, stamp
from cim_cli.bench.receiver import ReceiverPool, connect_all
from cim_cli.bench.report import Report, Run
from cim_cli.bench.target import API, Baseline, CimTarget, User

__all__ = ["new_report", "run"]


async def _group(target: CimTarget, owner: User, members: list[User]) -> str:
    """Create a group of ``members`` owned by ``owner``; its path for sends."""
    name = f"g{uuid.uuid4().hex[:8]}"
    payload = {"name": name, "members": [m.name for m in members]}
    status, answer = await target.pool.call(  # type: ignore[union-attr]
        "POST", API + "/groups", payload, {"Authorization": f"Bearer {owner.token}"}
    )
    if status != 201:
        raise HttpError(f"POST /groups: {status} {answer}")
    return f"{API}/groups/{name}/messages"


BodyOf = Callable[[str], bytes]
"""A message body (``KEY|NS``) -> the JSON of the request that sends it."""


async def _plan(
    target: CimTarget | Baseline, args: argparse.Namespace, owner: User, members: list[User]
) -> tuple[str, dict[str, str], BodyOf]:
    """Path, headers and request body of one send to every member."""
    if isinstance(target, Baseline):  # the member list travels with each message
        names = json.dumps([m.name for m in members])
        return "/messages", {}, lambda body: f'{{"to":{names},"body":"{body}"}}'.encode()
    if args.push_all:
        if not target.api_key:
            raise ValueError("--push-all needs the cluster's API key (--api-key with --route)")
        return (
            API + "/push",
            {"X-API-Key": target.api_key},
            lambda body: f'{{"to":"*","body":"{body}"}}'.encode(),
        )
    path = await _group(target, owner, members)
    return path, {"Authorization": f"Bearer {owner.token}"}, lambda body: f'{{"body":"{body}"}}'.encode()


async def _burst(
    conns: list[HttpConnection], path: str, headers: dict[str, str], body_of: BodyOf, keys: list[str]
) -> list[int]:
    """Send one message per connection at once; the recipients of each accepted one (0: refused)."""

    async def one(conn: HttpConnection, key: str) -> int:
        try:
            status, answer = await conn.send(conn.build("POST", path, body_of(stamp(key)), headers))
        except HttpError:
            return 0
        return int(json.loads(answer)["recipients"]) if status == 202 else 0

    return await asyncio.gather(*(one(c, k) for c, k in zip(conns, keys, strict=True)))


def new_report(args: argparse.Namespace) -> Report:
    """The scenario's report, to which each target's ``run`` is added."""
    return Report(
        "fanout" + (" --push-all" if args.push_all else ""),
        {"members": args.members, "bursts": args.bursts, "burst size": args.burst_size},
    )


async def run(target: CimTarget | Baseline, args: argparse.Namespace) -> Run:
    """The whole scenario on ``target``."""
    tag = uuid.uuid4().hex[:6]
    users = await target.users([f"f{tag}-{i}" for i in range(args.members + 1)])
    owner, members = users[0], users[1:]
    path, headers, body_of = await _plan(target, args, owner, members)
    receipts = Receipts(f"{tag}-")
    async with ReceiverPool(receipts) as pool:
        await connect_all(pool, members)
        conns = [HttpConnection(*target.http) for _ in range(args.burst_size)]
        try:
            return await _measure(target, args, conns, (path, headers, body_of), receipts, tag)
        finally:
            for conn in conns:
                conn.close()


async def _measure(
    target: CimTarget | Baseline,
    args: argparse.Namespace,
    conns: list[HttpConnection],
    plan: tuple[str, dict[str, str], BodyOf],
    receipts: Receipts,
    tag: str,
) -> Run:
    expected: dict[str, int] = {}
    busy_s = 0.0
    cpu = CpuWindow(target.processes())
    cpu.start()
    for burst in range(args.bursts):
        keys = [f"{tag}-{burst}-{i}" for i in range(args.burst_size)]
        began = time.monotonic()
        recipients = await _burst(conns, *plan, keys)
        expected.update({k: n for k, n in zip(keys, recipients, strict=True) if n})
        goal = sum(expected.values())
        reached = await receipts.wait(lambda goal=goal: receipts.total >= goal, args.grace)
        end = receipts.last_ns / 1e9 if reached else time.monotonic()  # last receipt, or gave up
        busy_s += max(end, began) - began
    used = cpu.stop()
    deliveries = sum(min(receipts.by_key.get(k, [0])[0], n) for k, n in expected.items())
    complete = {k for k, n in expected.items() if receipts.by_key.get(k, [0])[0] >= n}
    run = Run(target.name, "delivery")
    run.figures = {
        "messages": len(expected),
        "deliveries/s": round(deliveries / busy_s, 1) if busy_s > 0 else 0.0,
        **{f"to all {k}": v for k, v in latency_figures(receipts.last_latencies_ms(complete)).items()},
        "deliveries": deliveries,
        "lost": sum(expected.values()) - deliveries,
        "refused": args.bursts * args.burst_size - len(expected),
    }
    run.set_cpu(used, deliveries)
    return run
