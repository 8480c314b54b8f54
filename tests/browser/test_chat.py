"""The web chat at ``/`` in a real Chromium: people register, chat, search, come back, move."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from cim_client import Client
from tests.browser.conftest import PASSWORD, OpenPage, name, open_chat, replace_node, say, sign_in
from tests.harness import Cluster

pytestmark = pytest.mark.asyncio(loop_scope="package")


def conv(page: Page, who: str):
    """The sidebar entry of a conversation."""
    return page.locator(f'.sidebar button.conv[data-name="{who}"]')


def bodies(page: Page):
    return page.locator("#timeline li.msg .body")


async def test_two_people_register_and_chat_both_ways(open_page: OpenPage) -> None:
    alice, bob = name("alice"), name("bob")
    a, b = await open_page(), await open_page()
    await sign_in(b, bob)
    await sign_in(a, alice)
    await expect(conv(a, bob).locator(".dot.on")).to_be_visible()  # bob is listed online
    await expect(a.locator("#online-count")).to_contain_text("online")

    await open_chat(a, bob)
    await say(a, "hi bob")
    await expect(conv(b, alice).locator(".badge")).to_have_text("1")  # unread on bob's side
    await conv(b, alice).click()
    await expect(bodies(b)).to_have_text(["hi bob"])
    await expect(conv(b, alice).locator(".badge")).to_be_hidden()

    await say(b, "hello alice\nsecond line")
    await expect(bodies(a)).to_have_text(["hi bob", "hello alice\nsecond line"])
    await expect(a.locator("#timeline li.msg.theirs .who")).to_have_text([bob])


async def test_a_group_conversation(open_page: OpenPage) -> None:
    owner, member = name("gowner"), name("gmember")
    group = name("team")
    a, b = await open_page(), await open_page()
    await sign_in(a, owner)
    await sign_in(b, member)
    await a.click("#new-group")
    await a.fill("#group-name", group)
    await a.fill("#group-members", member)
    await a.press("#group-members", "Enter")
    await expect(a.locator("#chat-title")).to_have_text(f"# {group}")
    await expect(a.locator("#chat-sub")).to_contain_text("2 members")
    await say(a, "welcome to the team")

    await expect(conv(b, group).locator(".badge")).to_have_text("1")
    await conv(b, group).click()
    await expect(bodies(b)).to_have_text(["welcome to the team"])
    await say(b, "thanks")
    await expect(bodies(a)).to_have_text(["welcome to the team", "thanks"])


async def test_history_is_shown_and_searched(open_page: OpenPage, web_cluster: Cluster) -> None:
    reader, writer = name("reader"), name("writer")
    await web_cluster.create_user(reader, PASSWORD)
    async with Client(web_cluster.route_url, writer, PASSWORD) as sdk:
        await sdk.register()
        for body in ("the first apple", "a banana", "APPLE pie", "cherries"):
            await sdk.send(reader, body)
    page = await open_page()
    await sign_in(page, reader, register=False)
    await conv(page, writer).click()
    await expect(bodies(page)).to_have_text(["the first apple", "a banana", "APPLE pie", "cherries"])

    await page.fill("#search", "apple")
    await page.press("#search", "Enter")
    results = page.locator("#results-list li.msg .body")
    await expect(results).to_have_text(["APPLE pie", "the first apple"])  # newest first, any case
    await expect(page.locator("#results-list mark")).to_have_text(["APPLE", "apple"])
    await expect(page.locator("#results-title")).to_have_text(re.compile("2 results"))
    await page.keyboard.press("Escape")
    await expect(page.locator("#results")).to_be_hidden()


async def test_an_offline_user_gets_the_message_on_the_next_visit(
    open_page: OpenPage, web_cluster: Cluster
) -> None:
    sender, away = name("sender"), name("away")
    first = await open_page()
    await sign_in(first, away)
    await first.click("#logout")
    await expect(first.locator("#signin")).to_be_visible()

    page = await open_page()
    await sign_in(page, sender)
    await open_chat(page, away)
    await say(page, "you were away")
    await expect(page.locator("#chat-sub")).to_have_text("offline")

    later = await open_page()
    await sign_in(later, away, register=False)
    await expect(conv(later, sender).locator(".badge")).to_have_text("1")
    await expect(later).to_have_title("(1) cim chat")
    await conv(later, sender).click()
    await expect(bodies(later)).to_have_text(["you were away"])


async def test_a_browser_user_and_an_sdk_user_talk(open_page: OpenPage, web_cluster: Cluster) -> None:
    web_user, sdk_user = name("web"), name("sdk")
    page = await open_page()
    await sign_in(page, web_user)
    async with Client(web_cluster.route_url, sdk_user, PASSWORD) as sdk:
        await sdk.register()
        await sdk.connect()
        await open_chat(page, sdk_user)
        await say(page, "from the browser")
        got = await sdk.next_message(timeout=10)
        assert (got.sender, got.to, got.body, got.kind) == (web_user, sdk_user, "from the browser", "p2p")
        async with Client(web_cluster.route_url, web_user, PASSWORD) as twin:  # the same user elsewhere
            await twin.connect()
            devices = [d["device"] for d in (await twin.me())["devices"]]
            assert devices[0].startswith("web-") and devices[1] == "default", devices  # oldest first
        await expect(page.locator("#status")).to_contain_text("connected")  # not kicked by it
        sent = await sdk.send(web_user, "from python ✓")
        await expect(bodies(page)).to_have_text(["from the browser", "from python ✓"])
        await sdk.edit(sent.id, "from python, edited")  # v0.2: the page changes the message
        await expect(bodies(page)).to_have_text(["from the browser", "from python, edited"])
        await sdk.recall(sent.id)
        await expect(bodies(page)).to_have_text(["from the browser"])


async def test_a_killed_node_shows_offline_then_recovers_with_nothing_lost(
    open_page: OpenPage, web_cluster: Cluster
) -> None:
    victim_user, peer = name("moving"), name("peer")
    page = await open_page()
    await sign_in(page, victim_user)
    node = re.search(r"connected · (\S+)", await page.locator("#status").inner_text()).group(1)
    await web_cluster.create_user(peer, PASSWORD)
    status = page.locator("#status")
    async with Client(web_cluster.route_url, peer, PASSWORD) as sdk:
        await sdk.send(victim_user, "before")
        await expect(conv(page, peer).locator(".badge")).to_have_text("1")
        try:
            await web_cluster.nodes[node].kill()
            await expect(status).not_to_have_attribute("data-state", "online")
            during = [await sdk.send(victim_user, f"during {i}") for i in range(3)]
            assert all(s.status in ("stored", "delivered") for s in during)
            await expect(status).to_have_text(re.compile("^connected · "), timeout=20_000)
            await expect(status).not_to_have_text(re.compile(f"· {re.escape(node)}$"))
            await sdk.send(victim_user, "after")
            await conv(page, peer).click()
            await expect(bodies(page)).to_have_text(["before", "during 0", "during 1", "during 2", "after"])
        finally:
            await replace_node(web_cluster, node)


async def test_phone_width_one_pane_at_a_time_and_nothing_moves(
    open_page: OpenPage, web_cluster: Cluster
) -> None:
    me, friend = name("phone"), name("friend")
    await web_cluster.create_user(friend, PASSWORD)
    page = await open_page(width=390, height=760)
    await sign_in(page, me)
    await expect(page.locator("#chat")).to_be_hidden()  # the list alone
    await open_chat(page, friend)
    await expect(page.locator(".sidebar")).to_be_hidden()  # the conversation alone
    composer = await page.locator("#message").bounding_box()
    first_entry = await page.locator("#back").bounding_box()
    async with Client(web_cluster.route_url, friend, PASSWORD) as sdk:
        for i in range(3):
            await sdk.send(me, f"incoming {i}")
        await expect(bodies(page)).to_have_count(3)
    assert await page.locator("#message").bounding_box() == composer  # no layout jump
    assert await page.locator("#back").bounding_box() == first_entry
    await page.keyboard.press("Escape")  # back to the list
    await expect(page.locator(".sidebar")).to_be_visible()
    await expect(conv(page, friend)).to_be_visible()


async def test_a_node_that_joined_after_the_page_loaded_is_reached_after_a_reload(
    open_page: OpenPage, web_cluster: Cluster
) -> None:
    """The page may open WebSockets only to the nodes listed when it was served (its CSP); sent
    to a newer node, it reloads itself once (the session survives in sessionStorage)."""
    page = await open_page()
    await sign_in(page, name("newnode"))
    await page.evaluate("window.loadedOnce = true")
    old = sorted(web_cluster.nodes)
    newer = await web_cluster.add_node()
    for node_id in old:  # every node the page knows goes away: only the newer one takes logins
        resp = await web_cluster.http.post(
            web_cluster.api(f"/nodes/{node_id}/drain"), headers=web_cluster.admin_headers
        )
        assert resp.status_code == 202
    await expect(page.locator("#status")).to_have_text(f"connected · {newer.name}", timeout=20_000)
    assert await page.evaluate("window.loadedOnce") is None, "the page reloaded to reach the new node"
    for node_id in old:
        assert await web_cluster.nodes.pop(node_id).wait() == 0
    await web_cluster.add_node()  # two nodes again for whatever runs next
