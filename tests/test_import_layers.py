"""The package's imports: no circle between modules, and no import against the layering.

DESIGN: `cli` → `serving` → jobs → shared ground; `registry` reads `packages`, never the
reverse; `artifacts` uses `pgp`, never the reverse. Every import counts, also one inside a
function or under TYPE_CHECKING: a circle there is still a circle a reader has to untangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import fleetgap

SOURCE = Path(fleetgap.__file__).parent
SHARED_GROUND = {"__init__", "errors", "semver", "config", "store", "net"}

# What each folder (or top-level module) may import besides itself and the shared ground.
ALLOWED: dict[str, set[str]] = {
    "pgp": set(),
    "packages": {"pgp"},
    "artifacts": {"pgp"},
    "registry": {"packages"},
    "bundle": {"artifacts", "pgp"},
    "ops": {"registry", "packages", "artifacts", "bundle", "pgp"},
    "serving": {"registry", "packages", "artifacts", "bundle", "ops", "pgp"},
    "cli": {"serving", "registry", "packages", "artifacts", "bundle", "ops", "pgp"},
    "__main__": {"cli"},
}
# Within the shared ground: the order in which one may import another.
GROUND_ORDER = ["__init__", "errors", "semver", "config", "store", "net"]


def test_the_top_level_holds_only_folders_and_the_shared_ground() -> None:
    loose = {p.stem for p in SOURCE.glob("*.py")} - SHARED_GROUND - {"__main__"}
    assert loose == set()


def test_no_module_import_circle() -> None:
    graph = import_graph()
    circles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert circles == []


def test_no_import_against_the_layering() -> None:
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            if not allowed(unit(module), unit(target)):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_checker_sees_a_circle_and_an_upward_import() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [
        {"a", "b", "c"},
        {"d"},
    ]
    assert not allowed("packages", "registry")
    assert not allowed("pgp", "artifacts")
    assert not allowed("registry", "serving")
    assert not allowed("config", "net")
    assert allowed("registry", "packages")


def allowed(source: str, target: str) -> bool:
    if source == target:
        return True
    if source in SHARED_GROUND:
        return target in SHARED_GROUND and GROUND_ORDER.index(target) < GROUND_ORDER.index(source)
    return target in SHARED_GROUND or target in ALLOWED[source]


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_graph() -> dict[str, set[str]]:
    modules = {name: path for name, path in module_files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {t for t in imported(name, path) if t in modules and t != name}
    return graph


def module_files() -> Iterator[tuple[str, Path]]:
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imported(name: str, path: Path) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm; the components in the order of their smallest member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found, key=min)
