"""What the chat remembers between runs (cim_cli/chat/profile.py)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from cim_cli.chat.profile import TOKEN_MARGIN_MS, CachedLogin, Profile

ROUTE = "http://127.0.0.1:8080"
NODE = {"id": "node-1", "host": "127.0.0.1", "port": 7000}


def test_cim_home_holds_everything(tmp_path: Path) -> None:
    profile = Profile.default({"CIM_HOME": str(tmp_path)})
    assert profile.config_dir == profile.data_dir == tmp_path
    assert profile.history_path.parent == tmp_path


def test_default_folders_are_per_user(tmp_path: Path) -> None:
    profile = Profile.default({})
    assert profile.config_dir.name == "cim" and profile.data_dir.name == "cim"


def test_remembers_route_and_username_never_a_password(tmp_path: Path) -> None:
    profile = Profile(tmp_path / "conf", tmp_path / "data")
    assert profile.remembered().route_url is None and profile.remembered().username is None
    profile.remember(ROUTE, "alice")
    again = Profile(tmp_path / "conf", tmp_path / "data").remembered()
    assert (again.route_url, again.username) == (ROUTE, "alice")
    assert "password" not in profile.settings_path.read_text()


def test_token_cache_is_private_and_expires(tmp_path: Path) -> None:
    profile = Profile(tmp_path, tmp_path)
    now = int(time.time() * 1000)
    login = CachedLogin("tok-a", now + 3_600_000, NODE)
    profile.save_login(ROUTE, "alice", CachedLogin("old", 1, None))  # long expired: dropped on write
    profile.save_login(ROUTE, "alice", login)
    assert stat.S_IMODE(profile.tokens_path.stat().st_mode) == 0o600
    assert profile.cached_login(ROUTE, "alice", now) == login
    assert profile.cached_login(ROUTE + "/", "alice", now) == login
    assert profile.cached_login(ROUTE, "bob", now) is None
    assert profile.cached_login("http://other:1", "alice", now) is None
    # Near its expiry a token is not offered any more.
    assert profile.cached_login(ROUTE, "alice", login.expires_at - TOKEN_MARGIN_MS) is None
    profile.forget_token(ROUTE, "alice")
    assert profile.cached_login(ROUTE, "alice", now) is None


def test_token_cache_mode_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        Profile(tmp_path, tmp_path).save_login(ROUTE, "alice", CachedLogin("t", 2**53, None))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600


def test_corrupt_files_are_ignored(tmp_path: Path) -> None:
    profile = Profile(tmp_path, tmp_path)
    profile.settings_path.write_text("{not json")
    profile.tokens_path.write_text("[1, 2]")
    assert profile.remembered().username is None
    assert profile.cached_login(ROUTE, "alice") is None


def test_peers_keep_the_most_recent(tmp_path: Path) -> None:
    profile = Profile(tmp_path, tmp_path)
    assert profile.peers() == []
    profile.save_peers([f"u{i}" for i in range(600)])
    peers = profile.peers()
    assert len(peers) == 500 and peers[-1] == "u599"
