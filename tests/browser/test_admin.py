"""The operator page at ``/admin`` in a real Chromium: nodes, online users, rates, drain, kick."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, expect

from cim_client import Client
from tests.browser.conftest import PASSWORD, OpenPage, name, replace_node, sign_in
from tests.harness import API_KEY, Cluster

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def operator(open_page: OpenPage) -> Page:
    page = await open_page("/admin")
    await page.fill("#api-key", API_KEY)
    await page.press("#api-key", "Enter")
    await expect(page.locator("#status")).to_have_attribute("data-state", "online")
    return page


def node_row(page: Page, node_id: str):
    return page.locator(f'#nodes tr[data-node="{node_id}"]')


def user_row(page: Page, username: str):
    return page.locator(f'#users li[data-user="{username}"]')


async def chat_node(page: Page, not_on: str | None = None) -> str:
    """The node a chat page is connected to (once it is not ``not_on``), from its status line."""
    status = page.locator("#status")
    if not_on is not None:
        await expect(status).not_to_have_text(re.compile(f"connected · {re.escape(not_on)}$"))
    await expect(status).to_have_attribute("data-state", "online")
    return re.search(r"connected · (\S+)", await status.inner_text()).group(1)


async def test_a_wrong_key_is_refused(open_page: OpenPage) -> None:
    page = await open_page("/admin")
    await page.fill("#api-key", "not-the-key")
    await page.press("#api-key", "Enter")
    await expect(page.locator("#key-error")).to_have_text("That API key was refused.")
    await expect(page.locator("#console")).to_be_hidden()


async def test_nodes_online_users_and_message_rates(open_page: OpenPage, web_cluster: Cluster) -> None:
    first, second = name("opa"), name("opb")
    async with (
        Client(web_cluster.route_url, first, PASSWORD) as a,
        Client(web_cluster.route_url, second, PASSWORD) as b,
    ):
        for client in (a, b):
            await client.register()
            await client.connect()
        page = await operator(open_page)
        for node_id in await web_cluster.node_ids():
            row = node_row(page, node_id)
            await expect(row.locator(".state")).to_have_text("up")
            await expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^ws://127\.0\.0\.1:\d+/ws$"))
        await expect(page.locator("#nodes tr")).to_have_count(2)
        await expect(user_row(page, first)).to_be_visible()
        await expect(user_row(page, second)).to_be_visible()

        await page.fill("#user-search", first)
        await expect(page.locator("#users li")).to_have_count(1)
        await expect(user_row(page, first)).to_be_visible()

        for i in range(20):
            await a.send(second, f"m{i}")
        legend = page.locator('#legend span[data-kind="p2p"]')
        await expect(legend).not_to_have_text("p2p 0/s")
        await expect(page.locator('#chart polyline[data-kind="p2p"]')).to_have_count(1)


async def test_kick_a_user_after_confirming(open_page: OpenPage) -> None:
    victim = name("kicked")
    chat = await open_page()
    await sign_in(chat, victim)
    page = await operator(open_page)
    await page.fill("#user-search", victim)
    await user_row(page, victim).get_by_role("button", name="Kick").click()
    await expect(page.locator("#confirm-title")).to_have_text(f"Kick {victim}?")
    await page.click("#confirm-yes")
    await expect(chat.locator("#signin-error")).to_have_text("An operator ended your session.")
    await expect(user_row(page, victim)).to_have_count(0)


async def test_drain_a_node_moves_its_clients(open_page: OpenPage, web_cluster: Cluster) -> None:
    chat = await open_page()
    await sign_in(chat, name("drained"))
    node_id = await chat_node(chat)
    page = await operator(open_page)
    drain = node_row(page, node_id).get_by_role("button", name="Drain")

    await drain.click()
    await page.keyboard.press("Escape")  # changed my mind: nothing happens
    await expect(page.locator("#confirm")).to_be_hidden()
    await expect(node_row(page, node_id).locator(".state")).to_have_text("up")

    await drain.click()
    await expect(page.locator("#confirm-title")).to_have_text(f"Drain {node_id}?")
    # An empty node drains in a moment and leaves: watch every state its row shows, so that
    # "draining" counts even when the row is gone before the next look. (A promise, not
    # wait_for_function: the page's CSP forbids the eval that wait_for_function's string needs.)
    await page.evaluate(
        """(id) => {
          window.sawDraining = new Promise((resolve) => {
            const look = () => {
              const cell = document.querySelector(`#nodes tr[data-node="${id}"] .state`);
              if (cell && cell.textContent === "draining") resolve(true);
            };
            new MutationObserver(look).observe(document.getElementById("nodes"),
              { subtree: true, childList: true, characterData: true });
          });
        }""",
        node_id,
    )
    try:
        await page.click("#confirm-yes")
        assert await asyncio.wait_for(page.evaluate("() => window.sawDraining"), timeout=10)
        await chat_node(chat, not_on=node_id)  # the chat moved to the other node by itself
        await expect(node_row(page, node_id)).to_have_count(0)  # empty, it left
        assert await web_cluster.nodes.pop(node_id).wait() == 0
    finally:
        await replace_node(web_cluster, node_id)
