"""``python -m cim_node``: one connection node, settings from ``CIM_*`` variables.

SIGTERM or SIGINT: drain (clients get ``kick{drain}`` at ``CIM_DRAIN_RATE`` per
second, at most ``CIM_DRAIN_TIMEOUT_S``), then stop and exit 0; a second signal
stops at once. A drain requested over the bus ends the same way once the node
is empty. Exit 2: bad settings, missing credentials, or NATS or Redis refused
them (``shared.links.preflight``); exit 1: the node could not start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from cim_node.server import NodeServer
from shared.errors import SettingsError
from shared.limits import raise_open_files
from shared.links import Refused, preflight
from shared.settings import NodeSettings
from shared.tasks import first_done

try:
    import uvloop
except ImportError:  # uvloop is optional
    uvloop = None

log = logging.getLogger("cim_node")


def main() -> int:
    try:
        settings = NodeSettings.from_env()
    except SettingsError as exc:
        print(f"cim node: {exc}", file=sys.stderr)
        return 2
    settings.configure_logging()
    limit = raise_open_files()
    log.info("node %s: open files limit %d", settings.node_id, limit)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop if uvloop else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            runner.run(preflight(settings))
        except Refused as exc:
            print(f"cim node: {exc}", file=sys.stderr)
            return 2
        return runner.run(_run(settings))


async def _run(settings: NodeSettings) -> int:
    server = NodeServer(settings)
    stop_asked = asyncio.Event()
    force = asyncio.Event()

    def on_signal() -> None:
        if stop_asked.is_set():
            force.set()
        stop_asked.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            await server.start()
        except Exception:
            log.exception("node %s could not start", settings.node_id)
            return 1
        await first_done(stop_asked.wait(), server.finished.wait())
        if stop_asked.is_set():
            log.info("node %s: signal received, draining", settings.node_id)
            await server.drain()
            await first_done(server.finished.wait(), force.wait(), timeout=settings.drain_timeout_s + 5)
        return 0
    finally:
        await server.stop(timeout=10.0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


if __name__ == "__main__":
    sys.exit(main())
