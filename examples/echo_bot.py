"""An echo bot on the cim SDK: it answers every private message with the same text.

    python examples/echo_bot.py --route http://127.0.0.1:8080 --user bot --password secret123

It registers the user on first use, reconnects on its own (the SDK does), and
stops cleanly on Ctrl-C or SIGTERM. The password can also come from
``CIM_PASSWORD``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from cim_client import CimApiError, Client, Message, MessageKind

log = logging.getLogger("echo_bot")


async def echo(client: Client, msg: Message) -> None:
    """Send ``msg``'s text back to its sender (private messages only)."""
    if msg.kind != MessageKind.P2P or msg.sender == client.username:
        return
    try:
        await client.send(msg.sender, msg.body)
    except CimApiError as exc:
        log.warning("could not answer %s: %s", msg.sender, exc)


async def run(route: str, user: str, password: str) -> int:
    client = Client(
        route,
        user,
        password,
        on_state=lambda state, delay: log.info(
            "state %s%s", state, f" (retry in {delay:.1f}s)" if delay else ""
        ),
        on_kick=lambda reason: log.warning("kicked: %s", reason),
    )
    loop = asyncio.get_running_loop()
    serving: asyncio.Task[None] | None = None
    try:
        with contextlib.suppress(CimApiError):  # 409: registered before
            await client.register()
        await client.connect()
        print(f"echo bot {user} ready on {client.node.id if client.node else '?'}", flush=True)
        serving = asyncio.create_task(_serve(client))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, serving.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    finally:
        await client.close()
    return 0 if serving is not None and serving.cancelled() else 1  # else a kick ended it


async def _serve(client: Client) -> None:
    async for msg in client.messages():
        await echo(client, msg)
    log.info("session ended: %s", client.close_reason)


def main() -> int:
    parser = argparse.ArgumentParser(description="cim echo bot")
    parser.add_argument("--route", default=os.environ.get("CIM_ROUTE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--user", default="echo")
    parser.add_argument("--password", default=os.environ.get("CIM_PASSWORD"))
    args = parser.parse_args()
    if not args.password:
        parser.error("--password (or CIM_PASSWORD) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(run(args.route, args.user, args.password))


if __name__ == "__main__":
    sys.exit(main())
