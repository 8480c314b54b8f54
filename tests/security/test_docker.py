"""``docker/compose.yaml`` (not run in CI: no Docker engine) keeps the bus and the store closed
the way ``cim up`` does: checked by reading the files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cim_cli.ops.nats_auth import node_user, route_user

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _nats_conf(name: str = "nats.conf") -> dict:
    """A NATS configuration of docker/, each password variable's name in place of its value."""
    text = (DOCKER / name).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return json.loads(re.sub(r"\$(CIM_NATS_\w+_PASSWORD)", r'"\1"', body))


def _nats_users(name: str = "nats.conf") -> dict[str, dict]:
    """The users of a NATS configuration of docker/, by name."""
    return {u["user"]: u for u in _nats_conf(name)["authorization"]["users"]}


def _services(profile: str) -> dict[str, dict]:
    """compose.yaml's services of one profile."""
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    return {name: s for name, s in services.items() if profile in s.get("profiles", ())}


def test_compose_nats_users_have_cim_ups_permissions() -> None:
    users = _nats_users()
    assert set(users) == {"route", "node-1", "node-2"}
    for wanted in (route_user(), node_user("node-1"), node_user("node-2")):
        assert users[wanted.name]["permissions"] == wanted.entry()["permissions"], wanted.name
        assert users[wanted.name]["password"].startswith("CIM_NATS_")  # from the environment


def test_compose_publishes_only_route_and_nodes_and_every_link_has_credentials() -> None:
    services = _services("single")
    assert set(services) == {"nats", "redis", "route", "node-1", "node-2"}
    assert "ports" not in services["nats"] and "ports" not in services["redis"]
    users = _nats_users()
    for name in ("route", "node-1", "node-2"):
        env = services[name]["environment"]
        nats_url, redis_url = urlsplit(env["CIM_NATS_URL"]), urlsplit(env["CIM_REDIS_URL"])
        assert nats_url.username == name and nats_url.password
        assert nats_url.password == "${" + users[name]["password"] + "}"
        assert redis_url.username == "cim" and "CIM_REDIS_PASSWORD" in redis_url.password
    redis_command = " ".join(services["redis"]["command"])
    assert "user default off" in redis_command and "-@dangerous" in redis_command


def test_compose_defaults_to_the_single_profile() -> None:
    assert "COMPOSE_PROFILES=single" in (DOCKER / ".env").read_text().splitlines()


def test_compose_cluster_profile_is_three_nats_six_redis_two_routes_a_proxy_three_nodes() -> None:
    services = _services("cluster")
    assert set(services) == {
        *(f"ha-nats-{i}" for i in (1, 2, 3)),
        *(f"ha-redis-{i}" for i in range(1, 7)),
        "ha-redis-init",
        "ha-route-1",
        "ha-route-2",
        "ha-proxy",
        *(f"ha-node-{i}" for i in (1, 2, 3)),
    }
    published = {name for name, service in services.items() if "ports" in service}
    assert published == {"ha-proxy", "ha-node-1", "ha-node-2", "ha-node-3"}
    for i in (1, 2, 3):  # each server routes to the other two, as the cluster user
        command = services[f"ha-nats-{i}"]["command"]
        routes = command[command.index("--routes") + 1].split(",")
        assert sorted(urlsplit(r).hostname for r in routes) == [f"ha-nats-{j}" for j in (1, 2, 3) if j != i]
        assert all(urlsplit(r).username == "cluster" for r in routes)
        assert command[command.index("--server_name") + 1] == f"ha-nats-{i}"


def test_compose_cluster_links_have_credentials_and_cim_ups_permissions() -> None:
    conf = _nats_conf("nats-cluster.conf")
    assert conf["cluster"]["authorization"] == {"user": "cluster", "password": "CIM_NATS_CLUSTER_PASSWORD"}
    users = _nats_users("nats-cluster.conf")
    assert set(users) == {"route", "node-1", "node-2", "node-3"}
    for wanted in (route_user(), *(node_user(f"node-{i}") for i in (1, 2, 3))):
        assert users[wanted.name]["permissions"] == wanted.entry()["permissions"], wanted.name
    services = _services("cluster")
    for name, user in [("ha-route-1", "route"), ("ha-route-2", "route")] + [
        (f"ha-node-{i}", f"node-{i}") for i in (1, 2, 3)
    ]:
        env = services[name]["environment"]
        servers = [urlsplit(server) for server in env["CIM_NATS_URL"].split(",")]
        assert sorted(s.hostname for s in servers) == ["ha-nats-1", "ha-nats-2", "ha-nats-3"], name
        assert all(s.username == user and s.password == "${" + users[user]["password"] + "}" for s in servers)
        redis_url = env["CIM_REDIS_URL"]
        assert redis_url.startswith("redis+cluster://cim:${CIM_REDIS_PASSWORD}@"), name
        assert env["CIM_NATS_KV_REPLICAS"] == "3"
    acl = " ".join(services["ha-redis-1"]["command"])
    assert "user default off" in acl and "-@dangerous" in acl and "--masteruser replica" in acl
    assert "user replica on >%s +psync +replconf +ping" in acl  # may replicate, nothing else


def test_compose_proxy_is_the_address_the_routes_trust() -> None:
    services = _services("cluster")
    proxy = services["ha-proxy"]["networks"]["cluster"]["ipv4_address"]
    trusted = {services[r]["environment"]["CIM_TRUSTED_PROXIES"] for r in ("ha-route-1", "ha-route-2")}
    assert trusted == {proxy}
    conf = (DOCKER / "proxy.conf").read_text()
    assert "server ha-route-1:8080" in conf and "server ha-route-2:8080" in conf
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf  # the client's, not a forged chain
