"""The data folder of ``cim up``: where it is, the values it keeps there, and its modes.

The folder is private to its owner: ``cim up`` makes every folder in it 0700
and every file 0600 (secret, API key, NATS configuration, Redis ACL, TLS keys,
append-only file, logs), and its children run under ``umask 077`` so whatever
they create later is private too. ``cim up`` creates the cluster's secret and
API key once and keeps them there, so tokens survive a restart; ``cim status``
and ``cim push`` read the API key from it when they are given none.

A kept file that others may read (a mode looser than 0600, e.g. copied in with
``cp``) is refused with ``LooseModeError`` naming the file and the ``chmod``
that fixes it: its value may already be known to others, so cim will not
quietly go on using it.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "API_KEY_FILE",
    "SECRET_FILE",
    "LooseModeError",
    "check_private",
    "default_data_dir",
    "kept_secret",
    "private_dir",
    "private_tree",
    "read_kept",
    "write_private",
]

API_KEY_FILE = "api_key"
SECRET_FILE = "secret"
CHILD_UMASK = 0o077


class LooseModeError(PermissionError):
    """A secret file that users other than its owner may read or write."""


def default_data_dir() -> Path:
    """Where ``cim up`` keeps NATS and Redis data, the secret, the API key and logs."""
    import platformdirs  # noqa: PLC0415 - only the CLI needs it

    return Path(platformdirs.user_data_dir("cim"))


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created if needed, mode 0700 whatever it was."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def private_tree(root: Path) -> None:
    """Every folder under ``root`` 0700 and every file 0600 (what an older ``cim up`` left open)."""
    private_dir(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def check_private(path: Path) -> None:
    """Raise ``LooseModeError`` when group or others have any access to ``path``."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise LooseModeError(
            f"{path} has mode {mode:04o}: others may know its value; "
            f"check it, then `chmod 600 {path}` (or delete it to get a new one)"
        )


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, mode 0600 from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
    return path


def read_kept(path: Path) -> str:
    """The value kept in ``path``; ``FileNotFoundError``/``PermissionError`` as ``open`` raises
    them, ``ValueError`` when the file is empty. The file is only read: its mode stays as it is."""
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return value


def kept_secret(path: Path, nbytes: int) -> str:
    """The value kept in ``path``, created once (random, mode 0600) when there is none;
    ``LooseModeError`` when the kept file is readable by others."""
    try:
        value = read_kept(path)
    except (FileNotFoundError, ValueError):
        value = secrets.token_urlsafe(nbytes)
        write_private(path, value + "\n")
        return value
    check_private(path)
    return value
