"""shared.settings: CIM_* variables, overrides, validation."""

from __future__ import annotations

import pytest

from shared.errors import SettingsError
from shared.settings import NodeSettings, RateLimit, RouteSettings, credentials_problem, redacted

SECRET = "s" * 32
LINKS = {"CIM_NATS_URL": "nats://node:pw@127.0.0.1:4222", "CIM_REDIS_URL": "redis://cim:pw@127.0.0.1:6379/0"}
BASE = {"CIM_SECRET": SECRET, **LINKS}


def test_from_env_reads_cim_variables() -> None:
    env = {
        **BASE,
        "CIM_NODE_ID": "edge-1",
        "CIM_NODE_PORT": "9100",
        "CIM_LOGIN_TIMEOUT_S": "2.5",
        "CIM_METRICS_PORT": "0",
        "UNRELATED": "x",
    }
    s = NodeSettings.from_env(env)
    assert (s.node_id, s.node_port, s.login_timeout_s, s.metrics_port) == ("edge-1", 9100, 2.5, 0)
    assert s.heartbeat_s == 30 and s.redis_prefix == "cim:"


def test_overrides_win_and_none_is_ignored() -> None:
    env = {**BASE, "CIM_NODE_PORT": "9100"}
    s = NodeSettings.from_env(env, node_port=9200, node_host=None)
    assert s.node_port == 9200 and s.node_host == "127.0.0.1"


def test_route_list_and_rate_limit() -> None:
    env = {
        **BASE,
        "CIM_API_KEYS": "a, b,,c",
        "CIM_RATE_LIMIT": "10/30",
        "CIM_BALANCER": "random",
    }
    s = RouteSettings.from_env(env)
    assert s.api_keys == ("a", "b", "c") and s.rate_limit == RateLimit(10, 30) and s.balancer == "random"
    assert RateLimit.parse("5") == RateLimit(5, 10)
    assert not RateLimit.parse("0").enabled


def test_default_node_id_is_valid() -> None:
    assert NodeSettings.from_env(BASE).node_id


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CIM_SECRET": ""}, "CIM_SECRET"),
        ({"CIM_SECRET": "short"}, "CIM_SECRET"),
        ({"CIM_NODE_PORT": "abc"}, "CIM_NODE_PORT"),
        ({"CIM_NODE_ID": "Bad_Id"}, "CIM_NODE_ID"),
        ({"CIM_NODE_ID": "node-1\n"}, "CIM_NODE_ID"),  # `$` alone would let the newline pass
        ({"CIM_HEARTBEAT_S": "0"}, "CIM_HEARTBEAT_S"),
        ({"CIM_WRITE_BUFFER": "100"}, "CIM_WRITE_BUFFER"),
        ({"CIM_DRAIN_RATE": "0"}, "CIM_DRAIN_RATE"),
        ({"CIM_REGISTRY_REFRESH_S": "0.5"}, "CIM_REGISTRY_REFRESH_S"),
        ({"CIM_NODE_WS_PORT": "70000"}, "CIM_NODE_WS_PORT"),
        ({"CIM_WEB_ORIGINS": "chat.example"}, "CIM_WEB_ORIGINS"),
        ({"CIM_ROUTE_URL": "ftp://x"}, "CIM_ROUTE_URL"),
    ],
)
def test_node_validation_names_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as exc:
        NodeSettings.from_env({**BASE, **env})
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("env", "needle"),
    [({"CIM_BALANCER": "nope"}, "CIM_BALANCER"), ({"CIM_RATE_LIMIT": "-1"}, "CIM_RATE_LIMIT")],
)
def test_route_validation(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as exc:
        RouteSettings.from_env({**BASE, **env})
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("host", "advertise", "public"),
    [
        ("127.0.0.1", "", "127.0.0.1"),
        ("0.0.0.0", "", "127.0.0.1"),
        ("0.0.0.0", "chat.example", "chat.example"),
    ],
)
def test_public_host(host: str, advertise: str, public: str) -> None:
    s = NodeSettings.from_env(LINKS, secret=SECRET, node_host=host, advertise_host=advertise)
    assert s.public_host == public


@pytest.mark.parametrize(
    ("env", "origins"),
    [
        ({}, set()),
        ({"CIM_ROUTE_URL": "http://127.0.0.1:8080/"}, {"http://127.0.0.1:8080"}),
        ({"CIM_ROUTE_URL": "https://Chat.Example:443/app"}, {"https://chat.example"}),
        ({"CIM_ROUTE_URL": "http://[::1]:80"}, {"http://[::1]"}),
        (
            {"CIM_ROUTE_URL": "http://a:1", "CIM_WEB_ORIGINS": "https://b.example, *"},
            {"https://b.example", "*"},
        ),
    ],
)
def test_web_origins_default_to_the_route_origin(env: dict[str, str], origins: set[str]) -> None:
    s = NodeSettings.from_env({"CIM_SECRET": SECRET, **env})
    assert s.allowed_origins == origins
    assert s.node_ws_port == 0


@pytest.mark.parametrize(
    ("nats_url", "creds", "redis_url", "needle"),
    [
        ("nats://127.0.0.1:4222", "", "redis://cim:pw@127.0.0.1:6379/0", "CIM_NATS_URL"),
        ("nats://a:pw@127.0.0.1:4222", "", "redis://127.0.0.1:6379/0", "CIM_REDIS_URL"),
        ("tls://a:pw@127.0.0.1:4222", "", "rediss://cim@127.0.0.1:6379/0", "CIM_REDIS_URL"),
        ("nats://127.0.0.1:4222", "x.creds", "redis://cim:pw@127.0.0.1:6379/0", None),
        ("tls://a:pw@127.0.0.1:4222", "", "rediss://cim:pw@127.0.0.1:6379/0", None),
    ],
)
def test_a_server_process_needs_credentials(
    nats_url: str, creds: str, redis_url: str, needle: str | None
) -> None:
    problem = credentials_problem(nats_url, creds, redis_url)
    assert (problem is None) if needle is None else (needle in problem and ":pw@" not in problem)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CIM_TLS_CERT": "/nonexistent.pem"}, "CIM_TLS_KEY"),
        ({"CIM_TLS_CERT": "/nonexistent.pem", "CIM_TLS_KEY": "/nonexistent.pem"}, "no such file"),
        ({"CIM_TLS_CA": "/nonexistent.pem"}, "CIM_TLS_CA"),
        ({"CIM_MAX_PENDING": "0"}, "CIM_MAX_PENDING"),
    ],
)
def test_tls_and_pending_settings_are_checked(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as exc:
        NodeSettings.from_env({**BASE, **env})
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("CIM_NATS_KV_REPLICAS", "0"),
        ("CIM_NATS_KV_REPLICAS", "6"),
        ("CIM_REDIS_WAIT", "-1"),
        ("CIM_REDIS_WAIT_MS", "0"),
    ],
)
def test_ha_settings_out_of_range_are_refused(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match=var):
        RouteSettings.from_env({"CIM_SECRET": "s" * 32, var: value})


def test_ha_settings_defaults() -> None:
    settings = RouteSettings.from_env({"CIM_SECRET": "s" * 32})
    assert (settings.nats_kv_replicas, settings.redis_wait, settings.redis_wait_ms) == (1, 0, 100)


def test_redis_wait_is_refused_on_a_redis_cluster() -> None:
    """WAIT on a cluster pipeline goes to every master and sums: it would confirm nothing."""
    cluster = {"CIM_SECRET": "s" * 32, "CIM_REDIS_URL": "redis+cluster://cim:pw@127.0.0.1:7000"}
    with pytest.raises(SettingsError, match="CIM_REDIS_WAIT is not supported on a Redis Cluster"):
        RouteSettings.from_env({**cluster, "CIM_REDIS_WAIT": "1"})
    assert RouteSettings.from_env(cluster).redis_wait == 0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://route:pw1@h1:4222", "nats://route:***@h1:4222"),
        (
            "nats://route:pw1@h1:4222,nats://route:pw2@h2:4222",
            "nats://route:***@h1:4222,nats://route:***@h2:4222",
        ),
        ("redis+cluster://cim:pw@h1:7000,h2:7000", "redis+cluster://cim:***@h1:7000,h2:7000"),
        ("nats://h1:4222,nats://h2:4222", "nats://h1:4222,nats://h2:4222"),
    ],
)
def test_redacted_hides_every_password_of_a_list(url: str, shown: str) -> None:
    assert redacted(url) == shown
