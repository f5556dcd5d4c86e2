"""The module graph: no import cycles, and no layer importing one above it (read from source)."""

from __future__ import annotations

import ast
from pathlib import Path

import scalegym

PACKAGE = Path(scalegym.__file__).parent
# A module may import its own layer and the layers below: core < envs < agents < suites < cli.
# render draws envs (each family's draw.py uses its canvas; frames dispatches to them): envs' layer.
LAYERS = {"core": 0, "progress": 0, "envs": 1, "render": 1, "agents": 2, "suites": 3, "cli": 4}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("scalegym", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the scalegym modules it imports, anywhere in its body (lazy imports included).

    `from pkg import mod` counts as importing `mod`; a package's own `__init__` re-exports are
    not counted against the modules it re-exports.
    """
    known = modules()
    graph = {}
    for name, path in known.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scalegym"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(known)
                deps |= subs or {node.module}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("scalegym")}
        graph[name] = {d for d in deps if d in known and d != name and not name.startswith(d)}
    return graph


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else max(LAYERS.values())


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for dep in graph[node]:
            if dep in path:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in finished:
                visit(dep, [*path, dep])
        finished.add(node)

    finished: set[str] = set()
    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, cycles
    # The pair this graph once had: the registry registers gymnasium ids without the adapters.
    assert "scalegym.core.gym_adapters" not in graph["scalegym.core.registry"]


def test_no_upward_imports() -> None:
    upward = [
        f"{module} -> {dep}"
        for module, deps in import_graph().items()
        for dep in deps
        if layer(dep) > layer(module)
    ]
    assert not upward, upward
