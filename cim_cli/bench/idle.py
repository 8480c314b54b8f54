"""``cim bench idle``: many idle logged-in connections on one node.

``connections`` users log in over HTTP first (not measured); then each opens a
TCP connection to one node (the first user's; a token is valid on every node)
and logs in on raw frames. **connect+login/s** is
connections over the time until the last ``welcome``; **RSS per connection**
is the node's resident memory after all of them (once it settled: the
highest of three reads 0.2 s apart) minus before, over their number. CPU is
per connection (connect + login). The generator raises its open-files limit;
the node inherits it from the cluster the bench starts.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from cim_cli.bench.cpu import CpuWindow, rss_kib
from cim_cli.bench.receipts import Receipts
from cim_cli.bench.receiver import ReceiverPool, connect_all
from cim_cli.bench.report import Report, Run
from cim_cli.bench.target import CimTarget

__all__ = ["run"]

_SETTLE_READS = 3
_SETTLE_S = 0.2


async def _settled_rss(pid: int) -> int:
    values = []
    for _ in range(_SETTLE_READS):
        await asyncio.sleep(_SETTLE_S)
        values.append(rss_kib(pid))
    return max(values)


async def run(target: CimTarget, args: argparse.Namespace) -> Report:
    """The whole scenario on ``target`` (with ``--route``: no memory or CPU figures of the node)."""
    tag = uuid.uuid4().hex[:6]
    users = await target.users([f"i{tag}-{i}" for i in range(args.connections)])
    node = users[0]
    node_pid = target.node_pid(node.node) if target.cluster is not None else None
    report = Report("idle", {"connections": args.connections, "node": node.node})
    async with ReceiverPool(Receipts(tag)) as pool:
        before = await _settled_rss(node_pid) if node_pid else 0
        cpu = CpuWindow(target.processes())
        cpu.start()
        began = time.monotonic()
        await connect_all(pool, users, at=(node.host, node.port))
        elapsed = time.monotonic() - began
        used = cpu.stop()
        after = await _settled_rss(node_pid) if node_pid else 0
        alive = sum(1 for r in pool.receivers if r.transport is not None)
    result = Run("cim", "connection")
    result.figures = {
        "connections": alive,
        "connect+login/s": round(len(users) / elapsed, 1),
        "node RSS before KiB": before,
        "node RSS after KiB": after,
        "RSS KiB/connection": round((after - before) / len(users), 2),
    }
    result.set_cpu(used, len(users))
    report.runs.append(result)
    return report
