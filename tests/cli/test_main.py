"""The ``cim`` command: argument parsing, flag -> CIM_* mapping, status and push."""

from __future__ import annotations

import io

import pytest

from cim_cli.main import build_parser, process_env
from cim_cli.ops import status
from cim_client import Client
from tests.harness import API_KEY, Cluster

PASSWORD = "password123"


def test_process_flags_become_cim_variables() -> None:
    args = build_parser().parse_args(
        ["node", "--port", "9100", "--node-id", "edge-1", "--nats-url", "nats://n:4222"]
    )
    env = process_env(args, {"CIM_NODE_PORT": "1", "PATH": "/bin"})
    assert env["CIM_NODE_PORT"] == "9100" and env["CIM_NODE_ID"] == "edge-1"
    assert env["CIM_NATS_URL"] == "nats://n:4222" and env["PATH"] == "/bin"
    args = build_parser().parse_args(["route", "--host", "0.0.0.0", "--port", "8081", "--balancer", "random"])
    env = process_env(args, {})
    assert (env["CIM_ROUTE_HOST"], env["CIM_ROUTE_PORT"], env["CIM_BALANCER"]) == (
        "0.0.0.0",
        "8081",
        "random",
    )


def test_admin_settings_come_from_flags_then_environment() -> None:
    environ = {"CIM_API_KEYS": "k1, k2", "CIM_ROUTE_URL": "http://r:1"}
    assert status.api_key_from(None, environ) == "k1"
    assert status.api_key_from(None, {**environ, "CIM_API_KEY": "k0"}) == "k0"
    assert status.api_key_from("flag", environ) == "flag"
    assert status.route_from(None, environ) == "http://r:1"
    assert status.route_from(None, {}) == "http://127.0.0.1:8080"


@pytest.mark.asyncio(loop_scope="module")
async def test_status_and_push(module_cluster: Cluster) -> None:
    cluster = module_cluster
    async with Client(cluster.route_url, "pam", PASSWORD) as pam:
        await pam.register()
        await pam.connect()
        out = io.StringIO()
        assert await status.status(cluster.route_url, API_KEY, out) == 0
        lines = out.getvalue().splitlines()
        assert lines[0].split() == ["NODE", "ADDRESS", "STATE", "CONNECTIONS", "STARTED"]
        assert [line.split()[0] for line in lines[1:3]] == ["node-1", "node-2"]
        assert lines[-2].startswith("2 node(s), ") and lines[-2].endswith(", 1 user(s) online")
        assert lines[-1] == "online: pam"
        out = io.StringIO()
        assert await status.push(cluster.route_url, API_KEY, "pam", "from the cli", out) == 0
        assert out.getvalue().endswith("to 1 recipient(s)\n")
        got = await pam.next_message(5)
        assert (got.kind, got.body) == ("push", "from the cli")
