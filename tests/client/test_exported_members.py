"""The public surface of ``cim_client`` is exactly its ``__all__`` (after httpx's test of the same name)."""

from __future__ import annotations
import __future__

import subprocess
import sys

import cim_client

_CIM = {"shared", "cim_node", "cim_route", "cim_cli"}
_WATCHED = _CIM | {"prompt_toolkit", "fastapi", "uvicorn", "redis", "nats"}
_LOADED = "import sys, cim_client; print(*sorted(m for m in sys.modules if m.split('.')[0] in {watched!r}))"


def test_all_names_are_importable() -> None:
    for name in cim_client.__all__:
        assert getattr(cim_client, name) is not None, name


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(cim_client).items()
        if not name.startswith("_") and value is not __future__.annotations
    }
    assert sorted(public) == sorted(cim_client.__all__)


def test_the_library_imports_no_server_or_terminal_package() -> None:
    """Of cim only shared.protocol, .errors and .tasks, besides httpx and msgpack (docs/sdk.md)."""
    code = _LOADED.format(watched=_WATCHED)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["shared", "shared.errors", "shared.protocol", "shared.tasks"]
