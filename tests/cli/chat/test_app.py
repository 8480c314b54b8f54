"""The real ``cim chat`` (app.py and all its parts) in a pseudo-terminal (pexpect) against a real cluster.

Each chat is its own process with its own ``CIM_HOME``; the password comes
from ``CIM_PASSWORD``. Output is matched through the ANSI styling that
prompt-toolkit puts between the parts of a line (see ``styled``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import jwt
import pexpect
import pytest
import redis.asyncio as aioredis

from shared.keys import Keys
from tests.harness import Cluster, eventually

PASSWORD = "password123"
WAIT_S = 20.0
_ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z]|\s)*"
_CPR_REQUEST = "\x1b[6n"


def styled(*parts: str) -> re.Pattern[str]:
    """A pattern for ``parts`` printed one after the other, with styling in between."""
    return re.compile(_ANSI.join(re.escape(p) for p in parts))


def chat_command(user: str, route_url: str, device: str | None = None) -> list[str]:
    """The real command: ``python -m cim_cli chat USER --route URL [--device NAME]``."""
    argv = [sys.executable, "-m", "cim_cli", "chat", user, "--route", route_url]
    return argv if device is None else [*argv, "--device", device]


class Chat:
    """One ``cim chat`` process in a pty, read by a thread that plays the terminal.

    The thread answers prompt-toolkit's cursor position requests (``ESC[6n``)
    as a real terminal would, so the bottom toolbar is drawn; ``expect`` scans
    what was read so far. Every wait is bounded.
    """

    def __init__(
        self,
        user: str,
        route_url: str,
        home: Path,
        password: str | None = PASSWORD,
        device: str | None = None,
    ) -> None:
        self.user = user
        self.home = home
        env = {**os.environ, "CIM_HOME": str(home), "TERM": "xterm"}
        for name in ("CIM_ROUTE_URL", "CIM_PASSWORD"):
            env.pop(name, None)
        if password is not None:
            env["CIM_PASSWORD"] = password
        env.pop("PROMPT_TOOLKIT_NO_CPR", None)
        argv = chat_command(user, route_url, device)
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", dimensions=(40, 200))
        self.screen = ""
        self._pos = 0
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"pty-{user}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        tail = ""
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
            for _ in range((tail + data).count(_CPR_REQUEST)):
                self.child.send("\x1b[1;1R")
            tail = data[-3:]
            with self._changed:
                self.screen += data
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _wait_for(self, pattern: re.Pattern[str] | None, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if pattern is not None and (match := pattern.search(self.screen, self._pos)):
                    self._pos = match.end()
                    return match
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    what = "the end" if pattern is None else repr(pattern.pattern)
                    if pattern is None and self._eof:
                        return None
                    raise AssertionError(f"{self.user}: no {what}; screen:\n{self.screen[-3000:]!r}")
                self._changed.wait(left)

    async def expect(self, pattern: str | re.Pattern[str], timeout: float = WAIT_S) -> re.Match[str]:
        """The next match of ``pattern`` (a plain string is literal) after the previous match."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        match = await asyncio.to_thread(self._wait_for, regex, timeout)
        assert match is not None
        return match

    async def type(self, text: str) -> None:
        await asyncio.to_thread(self.child.send, text)

    async def line(self, text: str) -> None:
        """Type a line and press Enter."""
        await self.type(text + "\r")

    async def exit_code(self, timeout: float = WAIT_S) -> int:
        """Wait for the process to end; its exit status."""
        await asyncio.to_thread(self._wait_for, None, timeout)
        await asyncio.to_thread(self.child.wait)
        assert not self.child.isalive()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.kill(9)
            self.child.wait()
        self._reader.join(5)
        self.child.close()


@pytest.fixture
def chats(tmp_path: Path):
    started: list[Chat] = []

    def start(user: str, route_url: str, password: str | None = PASSWORD, device: str | None = None) -> Chat:
        home = tmp_path / (f"home-{user}" if device is None else f"home-{user}-{device}")
        chat = Chat(user, route_url, home, password, device)
        started.append(chat)
        return chat

    yield start
    for chat in started:
        chat.close()


async def connected(chat: Chat) -> str:
    """Wait for the chat's greeting and prompt; the id of the node it says it is on."""
    node = (await chat.expect(re.compile(f"connected as {chat.user} to node (\\S+) "))).group(1)
    await chat.expect(styled("all", ">"))
    return node


async def test_two_fresh_chats_land_on_two_nodes_talk_both_ways_tab_completes_and_quit(
    cluster: Cluster, chats
) -> None:
    await cluster.register("bob", PASSWORD)
    bob = chats("bob", cluster.route_url)
    bob_node = await connected(bob)

    # alice is new: the chat offers to register her.
    alice = chats("alice", cluster.route_url)
    await alice.expect("register it now?")
    await alice.line("y")
    await alice.expect("registered 'alice'")
    # One /login per start: the round-robin balancer puts two fresh chats on the two nodes.
    assert await connected(alice) != bob_node
    await alice.expect(re.compile(r"alice @ node-\d \|" + _ANSI + "connected" + _ANSI + r"\| to: everyone"))

    await alice.line("@bob hello bob")
    await bob.expect(styled("alice:", "hello bob"))
    await alice.expect(styled("hello bob", "(delivered)"))

    await bob.line("alice;;hi alice")
    await alice.expect(styled("bob:", "hi alice"))

    await bob.line(":to alice")
    await bob.expect("plain text now goes to alice")
    await bob.expect(styled("alice", ">"))
    await bob.line("sticky :tada:")
    await alice.expect(styled("bob:", "sticky \U0001f389"))

    # Tab after "@bo" completes the online user bob (alice's roster was filled at start).
    await alice.type("@bo\t")
    await alice.expect("@bo")
    await alice.line(" via tab")
    await bob.expect(styled("alice:", "via tab"))

    await alice.line(":q!")
    assert await alice.exit_code() == 0
    await bob.type("\x04")
    assert await bob.exit_code() == 0

    # Remembered: route and username, a private token cache, the input history.
    home = alice.home
    assert '"username": "alice"' in (home / "chat.json").read_text()
    assert stat.S_IMODE((home / "tokens.json").stat().st_mode) == 0o600
    assert PASSWORD not in (home / "chat.json").read_text() + (home / "tokens.json").read_text()
    assert "@bob hello bob" in (home / "chat_history").read_text()

    # The next run needs no password while the cached token is valid.
    again = chats("alice", cluster.route_url, password=None)
    await connected(again)
    await again.line(":q!")
    assert await again.exit_code() == 0


async def test_commands_and_errors(cluster: Cluster, chats) -> None:
    for user in ("carol", "dave"):
        await cluster.register(user, PASSWORD)
    dave = chats("dave", cluster.route_url)
    await connected(dave)
    carol = chats("carol", cluster.route_url)
    await connected(carol)

    await carol.line(":help")
    await carol.expect(styled(":pu PREFIX", "online users whose name starts with PREFIX"))
    await carol.line(":frob")
    await carol.expect("unknown command :frob")
    await carol.line("@nobody hi")
    await carol.expect(styled("unknown_user (404)"))

    await carol.line(":g create team dave")
    await carol.expect(re.compile(r"created #team: .*carol"))
    await carol.line("#team standup now")
    await dave.expect(styled("#team", "carol:", "standup now"))
    await carol.expect(styled("standup now", "(1 recipient)"))

    await carol.line(":olu")
    await carol.expect(re.compile(r"2 online users: carol, dave"))
    await carol.line(":pu da")
    await carol.expect("online users starting with 'da': dave")

    await dave.line("@carol the deploy failed")
    await carol.expect("the deploy failed")
    await carol.line(":h dave")
    await carol.expect(styled("-- history with dave: 1 --"))
    await carol.line(":q DEPLOY")  # no target: all my conversations (dave is a known peer now)
    await carol.expect(re.compile(r"'DEPLOY' in \d+ conversations.*: 1 --"))

    await carol.line(":delay 60 dave later")
    await carol.expect(styled("later", "(scheduled for"))
    await carol.line(":emoji 2")
    await carol.expect("emoji page 2/")
    await carol.line(":info")
    await carol.expect(re.compile(r"node: node-\d"))
    await carol.expect("connection: ready")

    await carol.type("\x03")
    assert await carol.exit_code() == 0

    # dave logs in somewhere else: the older chat says so and ends with status 1.
    second = chats("dave", cluster.route_url)
    await connected(second)
    await dave.expect("you logged in somewhere else; this session ends")
    assert await dave.exit_code() == 1
    await second.line(":q!")
    assert await second.exit_code() == 0


async def test_node_killed_reconnects_and_shows_missed_messages_once(cluster: Cluster, chats) -> None:
    await cluster.register("erin", PASSWORD)
    frank = await cluster.register("frank", PASSWORD)
    headers = {"Authorization": f"Bearer {frank['token']}"}
    erin = chats("erin", cluster.route_url)
    await connected(erin)

    await erin.line(":info")
    node_id = (await erin.expect(re.compile(r"node: (node-\d+)"))).group(1)
    await cluster.nodes[node_id].kill()
    await erin.expect("connection lost; reconnecting")

    for body in ("missed-1", "missed-2"):
        resp = await cluster.http.post(
            cluster.api("/messages"), json={"to": "erin", "body": body}, headers=headers
        )
        assert resp.status_code == 202, resp.text
    await erin.expect("reconnected to node", timeout=30)
    await erin.expect("missed-2")

    resp = await cluster.http.post(
        cluster.api("/messages"), json={"to": "erin", "body": "after"}, headers=headers
    )
    assert resp.status_code == 202, resp.text
    await erin.expect(styled("frank:", "after"))
    screen = erin.screen
    assert screen.count("missed-1") == 1 and screen.count("missed-2") == 1, screen[-2000:]

    await erin.line(":q!")
    assert await erin.exit_code() == 0

    async def no_session() -> bool:
        resp = await cluster.http.get(cluster.api("/users/online"), headers=headers)
        return "erin" not in resp.json()["users"]

    await eventually(no_session, timeout=10, what="erin offline after :q!")


async def _token_only_chat(cluster: Cluster, chats, user: str) -> tuple[Chat, str]:
    """A chat that starts from the token cached by an earlier run (no password at hand)."""
    await cluster.register(user, PASSWORD)
    first = chats(user, cluster.route_url)
    await connected(first)
    await first.line(":q!")
    assert await first.exit_code() == 0
    chat = chats(user, cluster.route_url, password=None)  # the cached token and node, no password
    await connected(chat)
    await chat.line(":info")
    node_id = (await chat.expect(re.compile(r"node: (node-\d+)"))).group(1)
    return chat, node_id


async def test_token_only_session_moves_to_another_node_without_the_password(cluster: Cluster, chats) -> None:
    gina, node_id = await _token_only_chat(cluster, chats, "gina")
    await gina.type("half typed")
    await cluster.nodes[node_id].kill()
    await gina.expect("reconnected to node", timeout=30)
    await gina.line("")  # the draft was kept while the session moved
    await gina.expect(styled("half typed", "(0 online)"))
    gina.child.kill(signal.SIGTERM)  # like a closed terminal: quits cleanly, saying bye
    assert await gina.exit_code() == 0


async def test_refused_token_asks_for_the_password_and_carries_on(cluster: Cluster, chats) -> None:
    hal, node_id = await _token_only_chat(cluster, chats, "hal")
    cached = json.loads((hal.home / "tokens.json").read_text())
    (entry,) = cached.values()
    claims = jwt.decode(entry["token"], options={"verify_signature": False})
    assert cluster.redis
    async with aioredis.Redis.from_url(cluster.redis.url) as redis:
        # as if it had expired or been revoked
        await redis.set(Keys().revoked(claims["sub"], claims["jti"]), b"1")
    await hal.type("half typed")
    await cluster.nodes[node_id].kill()
    await hal.expect("the token is no longer valid", timeout=30)
    await hal.expect("password for hal:")
    await hal.line(PASSWORD)
    await hal.expect("reconnected to node", timeout=30)
    await hal.expect("half typed")  # the draft is back in the prompt
    await hal.line("")
    await hal.expect(styled("half typed", "(0 online)"))
    await hal.line(":q!")
    assert await hal.exit_code() == 0


async def test_two_devices_carbons_read_mark_typing_and_edit(cluster: Cluster, chats) -> None:
    """ivy on a laptop and a phone, jon on one: what ivy sends from one device shows on the
    other as a carbon; jon's chat marks what it shows read (ivy sees "✓ read by jon"); ivy's
    typing shows in jon's toolbar; :edit changes the last message on both sides."""
    for user in ("ivy", "jon"):
        await cluster.register(user, PASSWORD)
    jon = chats("jon", cluster.route_url)
    await connected(jon)
    laptop = chats("ivy", cluster.route_url, device="laptop")
    await connected(laptop)
    phone = chats("ivy", cluster.route_url, device="phone")
    await connected(phone)

    await laptop.line("@jon lunch at noon?")
    await laptop.expect(styled("lunch at noon?", "(delivered)"))
    await jon.expect(styled("ivy:", "lunch at noon?"))
    await phone.expect(styled("you \u2192 jon (from laptop):", "lunch at noon?"))
    # jon's chat showed it: a receipt reaches both of ivy's devices.
    await laptop.expect("\u2713 read by jon")
    await phone.expect("\u2713 read by jon")

    await phone.type("@jon on my w")  # a draft to jon: jon's toolbar says so
    await jon.expect("ivy is typing\u2026")
    await phone.line("ay")
    await jon.expect(styled("ivy:", "on my way"))
    await laptop.expect(styled("you \u2192 jon (from phone):", "on my way"))

    await laptop.line(":edit on my way, 5 min")  # the latest of mine: the phone's message
    await laptop.expect("edited: on my way, 5 min")
    await jon.expect(styled("ivy edited a message: ", "on my way, 5 min"))
    await phone.expect(styled("you (from laptop) edited a message: ", "on my way, 5 min"))
    await jon.line(":h ivy")
    await jon.expect(styled("ivy:", "on my way, 5 min"))

    await laptop.line(":devices")
    await laptop.expect("2 devices online:")
    await laptop.expect("laptop on node")
    await laptop.expect("phone on node")
    for chat in (laptop, phone, jon):
        await chat.line(":q!")
        assert await chat.exit_code() == 0
