"""What ``cim chat`` remembers between runs.

- ``chat.json`` in the config folder: the last route URL and username (never a password);
- ``tokens.json`` in the data folder, mode 0600: login tokens with their expiry, one per
  route URL and username, reused while valid;
- ``chat_history`` in the data folder: the input history of the prompt;
- ``peers.json`` in the data folder: whom I had private conversations with (``:q`` searches them).

The folders are ``platformdirs.user_config_dir("cim")`` and ``user_data_dir("cim")``;
``CIM_HOME`` puts all of it in one folder instead (tests, several profiles).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["CachedLogin", "Profile", "Remembered", "TOKEN_MARGIN_MS"]

log = logging.getLogger(__name__)

# A cached token this close to its expiry is not worth using: the session would die soon.
TOKEN_MARGIN_MS = 60_000
MAX_PEERS = 500


@dataclass(frozen=True, slots=True)
class Remembered:
    """The route URL and username of the last session, when there was one."""

    route_url: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class CachedLogin:
    """A remembered login: the token, its expiry (ms since the epoch) and the node it named."""

    token: str
    expires_at: int
    node: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """The chat's files: settings in ``config_dir``, token cache and history in ``data_dir``."""

    config_dir: Path
    data_dir: Path

    @classmethod
    def default(cls, environ: Mapping[str, str] = os.environ) -> Profile:
        """``CIM_HOME`` when set, else the platform's per-user folders."""
        home = environ.get("CIM_HOME")
        if home:
            return cls(Path(home), Path(home))
        return cls(Path(platformdirs.user_config_dir("cim")), Path(platformdirs.user_data_dir("cim")))

    @property
    def settings_path(self) -> Path:
        return self.config_dir / "chat.json"

    @property
    def tokens_path(self) -> Path:
        return self.data_dir / "tokens.json"

    @property
    def peers_path(self) -> Path:
        return self.data_dir / "peers.json"

    @property
    def history_path(self) -> Path:
        """Where the prompt's input history lives (created on first use)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir / "chat_history"

    # ----- route URL and username -----------------------------------------------

    def remembered(self) -> Remembered:
        """The last route URL and username, or empty values on a first run."""
        data = _read_json(self.settings_path)
        return Remembered(_str_or_none(data.get("route_url")), _str_or_none(data.get("username")))

    def remember(self, route_url: str, username: str) -> None:
        """Keep the route URL and username for the next run."""
        _write_json(self.settings_path, {"route_url": route_url, "username": username}, mode=0o644)

    # ----- token cache ---------------------------------------------------------------

    def cached_login(self, route_url: str, username: str, now_ms: int | None = None) -> CachedLogin | None:
        """A stored login for this route and user that stays valid for a while yet, else ``None``."""
        entry = _read_json(self.tokens_path).get(_token_key(route_url, username))
        if not isinstance(entry, dict):
            return None
        token, expires_at, node = entry.get("token"), entry.get("expires_at"), entry.get("node")
        if not isinstance(token, str) or not isinstance(expires_at, int):
            return None
        now_ms = _now_ms() if now_ms is None else now_ms
        if expires_at - TOKEN_MARGIN_MS <= now_ms:
            return None
        return CachedLogin(token, expires_at, node if isinstance(node, dict) else None)

    def save_login(self, route_url: str, username: str, login: CachedLogin) -> None:
        """Store a token, its expiry and its node in the 0600 cache file."""
        tokens = _read_json(self.tokens_path)
        tokens[_token_key(route_url, username)] = {
            "token": login.token,
            "expires_at": int(login.expires_at),
            "node": login.node,
        }
        self._write_tokens(tokens)

    def forget_token(self, route_url: str, username: str) -> None:
        """Drop a token the server no longer accepts (revoked, logged out)."""
        tokens = _read_json(self.tokens_path)
        if tokens.pop(_token_key(route_url, username), None) is not None:
            self._write_tokens(tokens)

    # ----- people I talk with (for a search of all my conversations) ---------------

    def peers(self) -> list[str]:
        """Users I exchanged private messages with, most recent last."""
        names = _read_json(self.peers_path).get("peers")
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def save_peers(self, names: list[str]) -> None:
        """Keep the most recent ``MAX_PEERS`` names."""
        _write_json(self.peers_path, {"peers": names[-MAX_PEERS:]}, mode=0o600)

    def _write_tokens(self, tokens: dict[str, Any]) -> None:
        """Write the cache without expired entries, so the file does not grow forever."""
        now = _now_ms()
        live = {
            key: entry
            for key, entry in tokens.items()
            if isinstance(entry, dict)
            and isinstance(entry.get("expires_at"), int)
            and entry["expires_at"] > now
        }
        _write_json(self.tokens_path, live, mode=0o600)


def _token_key(route_url: str, username: str) -> str:
    return f"{username}@{route_url.rstrip('/')}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any], mode: int) -> None:
    """Write atomically; the file is created with ``mode`` so a token is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask; be exact
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
