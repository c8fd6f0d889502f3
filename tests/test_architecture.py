"""The import graph follows docs/architecture.md: arrows point down, never up, and never in a circle.

Every ``import`` and ``from ... import`` of every first-party module is read with ``ast`` (imports
inside functions included: a lazy import is still an arrow). Layers, top to bottom::

    tools (modelgate_dev) → dags → plugins → include → control (modelgate_control), contracts (modelgate_contracts)
    router (serving_images/router/router) → control, contracts

The control package (the routes store and the audit record core) imports nothing first-party and no
third-party package but SQLAlchemy.

Contracts import nothing first-party and no third-party package but pyarrow and pydantic.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO

ROOTS = {
    "modelgate_dev": REPO / "modelgate_dev",
    "dags": REPO / "dags",
    "plugins": REPO / "plugins",
    "include": REPO / "include",
    "modelgate_contracts": REPO / "modelgate_contracts",
    "modelgate_control": REPO / "modelgate_control",
    "router": REPO / "serving_images" / "router" / "router",
}
FIRST_PARTY = set(ROOTS)

ALLOWED: dict[str, set[str]] = {
    "modelgate_dev": {"modelgate_dev", "dags", "plugins", "include", "modelgate_contracts", "modelgate_control", "router"},
    "dags": {"dags", "plugins", "include", "modelgate_contracts"},
    "plugins": {"plugins", "include", "modelgate_contracts", "modelgate_control"},
    "include": {"include", "modelgate_contracts", "modelgate_control"},
    "modelgate_contracts": {"modelgate_contracts"},
    "modelgate_control": {"modelgate_control"},
    "router": {"router", "modelgate_contracts", "modelgate_control"},
}
"""First-party layers each layer may import (itself included)."""

CONTRACTS_THIRD_PARTY = {"pyarrow", "pydantic"}
NO_AIRFLOW = {"include", "modelgate_contracts", "modelgate_control", "router"}
CONTROL_THIRD_PARTY = {"sqlalchemy"}


def _modules(layer: str) -> Iterator[tuple[str, Path]]:
    root = ROOTS[layer]
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join([layer, *parts]), path


def _type_only_lines(tree: ast.Module) -> set[int]:
    """Line numbers of the statements under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def _imports(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, absolute module name, type-only?) of every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_only = _type_only_lines(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, node.lineno in type_only
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, node.lineno in type_only


def _all_imports() -> list[tuple[str, str, Path, int, str, bool]]:
    """(layer, module, file, line, imported module, type-only?) for every import of every first-party module."""
    out = []
    for layer in ROOTS:
        for module, path in _modules(layer):
            for line, imported, type_only in _imports(path):
                out.append((layer, module, path, line, imported, type_only))
    return out


IMPORTS = _all_imports()


def test_the_graph_is_read_from_every_layer() -> None:
    layers = {layer for layer, *_ in IMPORTS}
    assert layers == set(ROOTS), "a layer has no imports at all: did a folder move?"
    assert len(IMPORTS) > 200


@pytest.mark.parametrize("layer", sorted(ROOTS))
def test_layer_imports_only_the_layers_below_it(layer: str) -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for lay, _, path, line, imported, _ in IMPORTS
        if lay == layer and imported.split(".")[0] in FIRST_PARTY - ALLOWED[layer]
    ]
    assert bad == [], "upward or sideways arrows (docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(NO_AIRFLOW))
def test_domain_contracts_and_router_never_import_airflow(layer: str) -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line}"
        for lay, _, path, line, imported, _ in IMPORTS
        if lay == layer and imported.split(".")[0] == "airflow"
    ]
    assert bad == []


def test_contracts_import_only_the_standard_library_pyarrow_and_pydantic() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for lay, _, path, line, imported, _ in IMPORTS
        if lay == "modelgate_contracts"
        and imported.split(".")[0] not in stdlib | CONTRACTS_THIRD_PARTY | {"modelgate_contracts"}
    ]
    assert bad == []


def test_control_imports_only_the_standard_library_and_sqlalchemy() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for lay, _, path, line, imported, _ in IMPORTS
        if lay == "modelgate_control"
        and imported.split(".")[0] not in stdlib | CONTROL_THIRD_PARTY | {"modelgate_control"}
    ]
    assert bad == []


def _domain(module: str) -> str:
    """``include.canary.controller`` → ``include.canary``; top-level modules stay themselves."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "include" else parts[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_known_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_circles_between_layers_or_between_domains() -> None:
    """Runtime arrows only: an import under ``if TYPE_CHECKING:`` names a type and runs nothing.

    (The layer tests above count type-only imports too: a domain may not even name an Airflow type.)
    """
    edges: dict[str, set[str]] = defaultdict(set)
    for _, module, _, _, imported, type_only in IMPORTS:
        if imported.split(".")[0] in FIRST_PARTY and not type_only:
            src, dst = _domain(module), _domain(imported)
            if src != dst:
                edges[src].add(dst)
    assert _cycles(edges) == []
