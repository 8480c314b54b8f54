"""TLS on every link of a ``cim up --tls`` cluster (issue 10, item 4): route over HTTPS, nodes'
client listeners and NATS over TLS, clients checking certificates against the cluster's CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cim_client import AdminClient, Client
from shared.protocol import encode
from tests.cli.chat.test_app import Chat, connected, styled
from tests.harness import API_KEY, SECRET, Cluster

PASSWORD = "password123"


@pytest.fixture
async def tls_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with Cluster(tmp_path, secret=SECRET, tls=True) as c:
        await c.start(nodes=1)
        yield c


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_a_message_crosses_a_tls_cluster(tls_cluster: Cluster, transport: str) -> None:
    """TCP over TLS, and WebSocket over TLS (``wss``: the node's certificate on its WS port)."""
    route, ca = tls_cluster.route_url, tls_cluster.local.ca
    assert route.startswith("https://") and tls_cluster.local.nats_url.startswith("tls://")
    async with (
        Client(route, "ann", PASSWORD, tls_ca=ca) as ann,
        Client(route, "bob", PASSWORD, tls_ca=ca, transport=transport) as bob,
    ):
        for client in (ann, bob):
            await client.register()
            await client.connect()
        assert bob.node is not None and bob.node.tls
        assert bob.node.ws_url is not None and bob.node.ws_url.startswith("wss://")
        sent = await ann.send("bob", "over TLS")
        got = await bob.next_message(10)
        assert (got.id, got.sender, got.body) == (sent.id, "ann", "over TLS")
    async with AdminClient(route, API_KEY, tls_ca=ca) as admin:
        assert [n["id"] for n in await admin.nodes()] == [bob.node.id]


async def test_clients_refuse_a_certificate_they_cannot_check(tls_cluster: Cluster) -> None:
    route = tls_cluster.route_url
    async with httpx.AsyncClient(verify=ssl.create_default_context()) as http:  # the system store only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(route + "/healthz")
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.TransportError):  # plain HTTP to the HTTPS port
            await http.get(route.replace("https://", "http://") + "/healthz")


async def test_a_plain_client_is_refused_by_a_tls_node_which_keeps_serving(tls_cluster: Cluster) -> None:
    answer = await tls_cluster.register("ann")
    node = answer["node"]
    assert node["tls"] is True
    reader, writer = await asyncio.open_connection(node["host"], node["port"])
    got = b""
    try:
        writer.write(encode({"t": "login", "token": answer["token"]}))
        await writer.drain()
        async with asyncio.timeout(10):  # the node closes the connection: EOF or a reset
            while chunk := await reader.read(65536):
                got += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    assert b"welcome" not in got  # at most a TLS alert, never a frame
    # The node still serves TLS clients.
    async with Client(tls_cluster.route_url, "bob", PASSWORD, tls_ca=tls_cluster.local.ca) as bob:
        await bob.register()
        await bob.connect()
        assert bob.node is not None and bob.node.id == node["id"]


async def test_cim_chat_talks_over_tls(
    tls_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real ``cim chat`` in a pty, trusting the cluster's CA through ``CIM_TLS_CA``."""
    monkeypatch.setenv("CIM_TLS_CA", tls_cluster.local.ca)
    await tls_cluster.register("bob", PASSWORD)
    await tls_cluster.register("ann", PASSWORD)
    bob = Chat("bob", tls_cluster.route_url, tmp_path / "home-bob")
    ann = Chat("ann", tls_cluster.route_url, tmp_path / "home-ann")
    try:
        await connected(bob)
        await connected(ann)
        await ann.line("@bob hello over tls")
        await bob.expect(styled("ann:", "hello over tls"))
        await ann.line(":q!")
        assert await ann.exit_code() == 0
    finally:
        ann.close()
        bob.close()
