"""Make ``docs/web-chat.png``: the web chat with a conversation in it, on a cluster of its own.

    python -m tests.browser.screenshot docs/web-chat.png [--phone docs/web-chat-phone.png]

Not a test (pytest does not collect it); it reuses the browser tests' helpers.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from cim_client import Client
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, open_chat, say, sign_in
from tests.harness import SECRET, Cluster

BOB_SAYS = [
    "Morning! Did the deploy go out?",
    "Great. I'll tell the team.",
]
ALICE_SAYS = [
    "It did: both nodes drained and came back in under a minute.",
    "Nothing lost either, the replay caught everyone up.",
]


async def _shoot(out: Path, phone: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with Cluster(Path(tmp), secret=SECRET) as cluster:
            await cluster.start(nodes=2)
            for user in ("alice", "bob", "carol", "dave"):
                await cluster.create_user(user, PASSWORD)
            async with (
                Client(cluster.route_url, "bob", PASSWORD) as bob,
                Client(cluster.route_url, "carol", PASSWORD) as carol,
            ):
                await bob.connect()
                await carol.connect()
                await bob.create_group("launch", ["alice", "carol"])
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    page = await browser.new_page(viewport={"width": 1100, "height": 640})
                    await page.goto(cluster.route_url)
                    await sign_in(page, "alice", register=False)
                    await open_chat(page, "bob")
                    await bob.send("alice", BOB_SAYS[0])
                    await page.locator("#timeline li.msg.theirs").first.wait_for()
                    for text in ALICE_SAYS:
                        await say(page, text)
                    await bob.send("alice", BOB_SAYS[1])
                    await page.locator("#timeline li.msg.theirs").nth(1).wait_for()
                    await carol.send_group("launch", "Release notes are up")
                    await carol.send("alice", "lunch at 12?")
                    await page.locator('button.conv[data-name="carol"] .badge').wait_for()
                    await page.fill("#message", "See you at the retro")
                    await page.screenshot(path=str(out))
                    if phone is not None:
                        await page.set_viewport_size({"width": 390, "height": 760})
                        await page.screenshot(path=str(phone))
                    await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--phone", type=Path)
    args = parser.parse_args()
    asyncio.run(_shoot(args.out, args.phone))


if __name__ == "__main__":
    main()
