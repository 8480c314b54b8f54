"""The ``cim`` command: argument parsing, flag -> CIM_* mapping, status and push."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cim_cli.main import build_parser, main, process_env
from cim_cli.ops import status
from cim_cli.ops.data_folder import kept_secret
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


def test_with_no_key_given_the_one_cim_up_keeps_is_used(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # cim up's default data folder
    (tmp_path / "xdg" / "cim").mkdir(parents=True)
    default_key = kept_secret(tmp_path / "xdg" / "cim" / "api_key", 24)
    (tmp_path / "other").mkdir()
    other_key = kept_secret(tmp_path / "other" / "api_key", 24)
    assert status.api_key_from(None, {}) == default_key
    assert status.api_key_from(None, {}, tmp_path / "other") == other_key
    assert status.api_key_from(None, {"CIM_API_KEYS": "k1"}, tmp_path / "other") == "k1"
    assert (tmp_path / "other" / "api_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("command", [["status"], ["push", "--to", "bob", "hi"]])
def test_no_key_anywhere_says_what_to_do_and_exits_2(
    command: list[str], tmp_path: Path, monkeypatch, capsys
) -> None:
    for var in ("CIM_API_KEY", "CIM_API_KEYS"):
        monkeypatch.delenv(var, raising=False)
    assert main([*command, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cim: no API key given and {tmp_path / 'api_key'} does not exist.")
    assert "--api-key KEY or CIM_API_KEY" in err and "--data DIR" in err

    (tmp_path / "api_key").write_text("\n")
    assert main([*command, "--data", str(tmp_path)]) == 2
    assert "cannot be read" in capsys.readouterr().err


async def test_status_and_push(cluster: Cluster) -> None:
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
