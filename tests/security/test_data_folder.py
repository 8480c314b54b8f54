"""The data folder of ``cim up`` is private: folders 0700, files 0600, a loose secret refused
(issue 10, item 2)."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

from tests.harness import SECRET, Cluster


def _modes(root: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Mode of every folder and every file under ``root`` (relative path -> permission bits)."""
    folders, files = {".": stat.S_IMODE(root.stat().st_mode)}, {}
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            path = Path(folder, name)
            folders[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
        for name in names:
            path = Path(folder, name)
            files[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return folders, files


async def test_everything_in_the_data_folder_is_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with Cluster(data, secret=SECRET, tls=True) as cluster:
        await cluster.start(nodes=1)
        await cluster.register("ann")  # the append-only file gets written
        folders, files = _modes(data)
    assert {"logs", "nats", "redis", "tls"} <= set(folders)
    assert {"nats.conf", "redis.conf", "tls/server-key.pem", "tls/ca-key.pem", "logs/route.log"} <= set(files)
    assert any(name.startswith("redis/appendonly") for name in files), files
    assert {k: v for k, v in folders.items() if v != 0o700} == {}
    assert {k: v for k, v in files.items() if v != 0o600} == {}


async def test_up_refuses_a_secret_others_can_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret").write_text("s" * 43 + "\n")
    os.chmod(data / "secret", 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cim_cli",
        "up",
        "--route-port",
        "0",
        "--data",
        str(data),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 2, err.decode()
    assert "secret has mode 0644" in err.decode() and "chmod 600" in err.decode()
    assert out == b""
    assert stat.S_IMODE((data / "secret").stat().st_mode) == 0o644  # left for the owner to judge
    assert not (data / "nats").exists()  # nothing was started
