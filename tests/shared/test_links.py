"""``CIM_NATS_URL`` with several servers: one list for nats-py, the first user's inbox."""

from __future__ import annotations

import socket

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from shared.links import _check_redis, nats_options, nats_servers, redis_client


def test_a_comma_separated_url_lists_every_server() -> None:
    url = "nats://route:p1@127.0.0.1:4001, nats://route:p1@127.0.0.1:4002,nats://route:p1@127.0.0.1:4003"
    assert nats_servers(url) == [
        "nats://route:p1@127.0.0.1:4001",
        "nats://route:p1@127.0.0.1:4002",
        "nats://route:p1@127.0.0.1:4003",
    ]
    options = nats_options(url)
    assert options["servers"] == nats_servers(url)
    assert options["inbox_prefix"] == b"_INBOX.route"


def test_a_single_url_is_one_server() -> None:
    assert nats_options("nats://127.0.0.1:4222")["servers"] == ["nats://127.0.0.1:4222"]


def test_an_empty_url_is_refused() -> None:
    with pytest.raises(ValueError, match="no server"):
        nats_servers(" , ")


def test_a_cluster_url_gives_a_cluster_client_of_every_member() -> None:
    client = redis_client("redis+cluster://cim:p%40ss@127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    assert isinstance(client, RedisCluster)
    assert [(n.host, n.port) for n in client.startup_nodes] == [
        ("127.0.0.1", 7001),
        ("127.0.0.1", 7002),
        ("127.0.0.1", 7003),
    ]
    assert client.connection_kwargs["username"] == "cim"
    assert client.connection_kwargs["password"] == "p@ss"


def test_a_plain_url_gives_a_plain_client() -> None:
    assert isinstance(redis_client("redis://127.0.0.1:6379/0"), Redis)


def test_a_cluster_member_without_port_is_refused() -> None:
    with pytest.raises(ValueError, match="not host:port"):
        redis_client("redis+cluster://cim:p@127.0.0.1")


async def test_preflight_of_an_unreachable_cluster_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await _check_redis(f"redis+cluster://cim:p@127.0.0.1:{port}", "")
    assert "not reachable yet" in caplog.text
