"""The data folder of ``cim up``: where it is and the values it keeps there.

``cim up`` creates the cluster's secret and API key once and keeps them in the
folder (mode 0600), so tokens survive a restart; ``cim status`` and ``cim
push`` read the API key from it when they are given none.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["API_KEY_FILE", "SECRET_FILE", "default_data_dir", "kept_secret", "read_kept"]

API_KEY_FILE = "api_key"
SECRET_FILE = "secret"


def default_data_dir() -> Path:
    """Where ``cim up`` keeps NATS and Redis data, the secret, the API key and logs."""
    import platformdirs  # noqa: PLC0415 - only the CLI needs it

    return Path(platformdirs.user_data_dir("cim"))


def read_kept(path: Path) -> str:
    """The value kept in ``path``; ``FileNotFoundError``/``PermissionError`` as ``open`` raises
    them, ``ValueError`` when the file is empty. The file is only read: its mode stays as it is."""
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return value


def kept_secret(path: Path, nbytes: int) -> str:
    """The value kept in ``path``, created once (random, mode 0600) when there is none."""
    try:
        return read_kept(path)
    except (FileNotFoundError, ValueError):
        pass
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    os.chmod(path, 0o600)
    return value
