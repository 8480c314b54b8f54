"""Browser tests: Debian's headless Chromium driven by Playwright against a real cluster.

One cluster (NATS, Redis, a route, two nodes with WebSocket ports) and one browser serve
the whole package, to keep it fast; every test has a fresh browser context (its own
storage) and its own usernames. Tests that take a node away start another in its place.
Playwright's own browser download is never used: ``CHROMIUM`` is the system's binary.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.harness import SECRET, Cluster

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "password123"
WAIT_MS = 10_000
"""Longest wait for something to show on a page (far above what it takes)."""

expect.set_options(timeout=WAIT_MS)

OpenPage = Callable[..., Awaitable[Page]]


def name(prefix: str) -> str:
    """A username of this test's own (the cluster is shared)."""
    return f"{prefix}{secrets.token_hex(3)}"


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def web_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path_factory.mktemp("web"), secret=SECRET) as cluster:
        await cluster.start(nodes=2)
        yield cluster


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(loop_scope="package")
async def open_page(browser: Browser, web_cluster: Cluster) -> AsyncIterator[OpenPage]:
    """``await open_page(path)``: a page in a fresh context (its own sessionStorage)."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_(path: str = "/", width: int = 1100, height: int = 720) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(web_cluster.route_url + path)
        return page

    yield open_
    for context in contexts:
        await context.close()
    assert not errors, f"script errors on the page: {errors}"


async def sign_in(page: Page, username: str, register: bool = True) -> None:
    """Fill the sign-in form; wait until the chat is connected."""
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#register" if register else "#login")
    await expect(page.locator("#status")).to_have_attribute("data-state", "online")


async def open_chat(page: Page, username: str) -> None:
    await page.fill("#open-input", username)
    await page.press("#open-input", "Enter")
    await expect(page.locator("#chat-title")).to_have_text(username)


async def say(page: Page, text: str) -> None:
    """Type a message and press Enter; wait until the route accepted it."""
    await page.fill("#message", text)
    await page.press("#message", "Enter")
    sent = page.locator("#timeline li.msg.mine:not(.pending) .body", has_text=text)
    await expect(sent.last).to_be_visible()


async def replace_node(cluster: Cluster, node_id: str) -> None:
    """Put a fresh node in the place of ``node_id`` (killed or drained), so the next test has two."""
    gone = cluster.nodes.pop(node_id, None)
    if gone is not None and gone.alive:
        await gone.kill()
    await cluster.add_node()
