"""``CIM_NATS_URL`` with several servers: one list for nats-py, the first user's inbox."""

from __future__ import annotations

import pytest

from shared.links import nats_options, nats_servers


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
