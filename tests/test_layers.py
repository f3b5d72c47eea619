"""The package's import graph: every import (lazy ones inside functions too) runs down the layers, and none closes a circle.

Layers, lowest first (a module may import its own layer or a lower one):
0 plain helpers, 1 stores and settings, 2 models and quality scoring, 3 the stage packages,
4 the stage declarations, 5 the workflow, 6 the command line. README's "Layout" section describes them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

LAYERS: dict[str, int] = {
    **dict.fromkeys(["curate", "curate.exceptions", "curate.options", "curate.files", "curate.taxonomy", "curate.secrets", "curate.ports"], 0),
    **dict.fromkeys(["curate.settings", "curate.output", "curate.parallel", "curate.sources", "curate.store"], 1),
    **dict.fromkeys(["curate.models", "curate.quality"], 2),
    **dict.fromkeys(["curate.ingest", "curate.prelabel", "curate.errors", "curate.review", "curate.retrain", "curate.report"], 3),
    "curate.stages": 4,
    "curate.workflow": 5,
    **dict.fromkeys(["curate.commands", "curate.cli"], 6),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (REPO / "curate").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the curate modules it imports anywhere in its body."""

    def resolve(target: str) -> str:
        while target not in modules:
            target = target.rpartition(".")[0]
        return target

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {resolve(a.name) for a in node.names if a.name.startswith("curate")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("curate"):
                out |= {resolve(f"{node.module}.{a.name}") for a in node.names}
        edges[name] = out - {name}
    return edges


def _layer(module: str) -> int:
    top = ".".join(module.split(".")[:2])
    assert top in LAYERS, f"{module}: a new top-level module needs a layer in tests/test_layers.py"
    return LAYERS[top]


def test_every_import_runs_down_the_layers() -> None:
    edges = _imports(_modules())
    upward = sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if _layer(b) > _layer(a))
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_no_import_closes_a_circle() -> None:
    edges = _imports(_modules())
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    # The package itself is imported by every submodule's import (Python loads curate/__init__ first): not an edge.
    circles = [c for c in circles if "curate" not in c]
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_lazy_imports_and_circles(tmp_path: Path) -> None:
    """The checks above would pass vacuously if the parser missed imports inside functions."""
    edges = _imports(_modules())
    assert "curate.store.sql.registry" in edges["curate.stages.models"]  # imported inside run_export only
    assert "curate.models.members" in edges["curate.models.teacher"]  # imported inside _train_members only
