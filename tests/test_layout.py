"""The package's shape: layers without import cycles, a thin CLI, a declared public surface."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "acoustic_gmm"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def _imports(name: str) -> set[str]:
    """Package modules ``name`` imports, at the top or inside functions (lazy imports count too)."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("acoustic_gmm"):
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
    return {m if m in MODULES else "__init__" for m in found} - {name}


def test_no_import_cycle_inside_the_package():
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])
    # the layers the README describes: models and statistics know nothing of files, features or workflows
    assert graph["gmm"] <= {"errors"}
    assert graph["em"] <= {"errors", "gmm", "frames", "kernels"}
    assert "evaluation" not in graph["classify"] | graph["adapt"] and "adapt" not in graph["classify"]
    assert graph["backend"] <= {"errors"}  # the back end sees vectors, nothing of models or files
    assert "ivector" not in graph["verify"] | graph["backend"]


def test_the_cli_only_parses_calls_and_prints():
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and not n.level}
    assert "numpy" not in imported
    commands = [f for f in tree.body if isinstance(f, ast.FunctionDef)
                and any("command" in ast.unparse(d) for d in f.decorator_list)]
    assert len(commands) == 18  # fourteen commands and the four of `acoustic-gmm ivector`
    for f in commands:
        body = f.body[1:] if isinstance(f.body[0], ast.Expr) else f.body  # without the docstring (the help text)
        assert body[-1].end_lineno - body[0].lineno + 1 <= 25, f"acoustic-gmm {f.name}: the command does library work"


@pytest.mark.parametrize("name", [m for m in MODULES if m != "__init__"])
def test_every_module_declares_its_public_names(name):
    module = importlib.import_module(f"acoustic_gmm.{name}")
    assert module.__all__, name
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"acoustic_gmm.{name}.__all__ names what it does not define: {missing}"
    assert module.__doc__ and len(module.__doc__.splitlines()) >= 3, f"acoustic_gmm.{name} needs an opening comment"
