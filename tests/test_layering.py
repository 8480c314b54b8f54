"""The import rules of docs/architecture.md: no import circle (type-only imports included), and
imports flow one way between the packages. Read from the source, so it sees imports under
``if TYPE_CHECKING:`` and inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "cim_node", "cim_route", "cim_client", "cim_cli")
MAY_IMPORT = {
    "shared": {"shared"},
    "cim_node": {"shared", "cim_node"},
    "cim_route": {"shared", "cim_route"},
    "cim_client": {"shared", "cim_client"},
    "cim_cli": {"shared", "cim_client", "cim_cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that ``path`` imports (a name imported from a package counts as its
    submodule when there is one)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
            names.add(node.module)
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


GRAPH = {name: _imports(path, _modules()) - {name} for name, path in _modules().items()}


def _cycle_from(start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for imported in GRAPH[module]:
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_circle(module: str) -> None:
    assert _cycle_from(module) is None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_flow_one_way(module: str) -> None:
    package = module.split(".")[0]
    outside = {m for m in GRAPH[module] if m.split(".")[0] not in MAY_IMPORT[package]}
    assert not outside, f"{module} may not import {sorted(outside)}"
