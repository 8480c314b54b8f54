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


def _nats_users() -> dict[str, dict]:
    """docker/nats.conf's users by name, each password variable's name in place of its value."""
    text = (DOCKER / "nats.conf").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    body = re.sub(r"\$(CIM_NATS_\w+_PASSWORD)", r'"\1"', body)
    return {u["user"]: u for u in json.loads(body)["authorization"]["users"]}


def test_compose_nats_users_have_cim_ups_permissions() -> None:
    users = _nats_users()
    assert set(users) == {"route", "node-1", "node-2"}
    for wanted in (route_user(), node_user("node-1"), node_user("node-2")):
        assert users[wanted.name]["permissions"] == wanted.entry()["permissions"], wanted.name
        assert users[wanted.name]["password"].startswith("CIM_NATS_")  # from the environment


def test_compose_publishes_only_route_and_nodes_and_every_link_has_credentials() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
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
