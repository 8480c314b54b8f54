"""examples/echo_bot.py as a process against a real cluster."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from cim_client import Client
from tests.harness import Cluster

BOT = Path(__file__).resolve().parents[2] / "examples" / "echo_bot.py"
PASSWORD = "password123"


async def test_echo_bot_answers_and_stops_on_sigterm(cluster: Cluster) -> None:
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BOT),
        "--route",
        cluster.route_url,
        "--user",
        "bot",
        "--password",
        PASSWORD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert bot.stdout is not None
        async with asyncio.timeout(20):
            line = (await bot.stdout.readline()).decode()
        assert line.startswith("echo bot bot ready on node-"), line
        async with Client(cluster.route_url, "zoe", PASSWORD) as zoe:
            await zoe.register()
            await zoe.connect()
            for text in ("hello", "second, with ünïcode"):
                sent = await zoe.send("bot", text)
                carbon = await zoe.next_message(10)  # zoe's own send, as each of her devices sees it
                assert (carbon.id, carbon.carbon) == (sent.id, True)
                reply = await zoe.next_message(10)
                assert (reply.sender, reply.body, reply.kind) == ("bot", text, "p2p")
                assert reply.ts >= sent.ts
        bot.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await bot.wait() == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
