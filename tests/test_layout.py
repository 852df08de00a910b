"""The package's shape: layers as subpackages, imports only downwards, no shared private names, a thin CLI."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "acoustic_gmm"
# The layers, lowest first, as the data flows: audio -> features -> archive -> statistics -> model -> scores ->
# decisions.  A module may import from its own layer and the layers below; class models and speaker recognition
# sit side by side above the engine and know nothing of each other.
LAYERS = {"errors": 0, "features": 1, "storage": 2, "gmm": 3, "transforms": 4, "classes": 5, "speaker": 5, "interop": 6,
          "cli": 7}
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
                 for p in PACKAGE.rglob("*.py"))
MAX_LINES = 600


def _module_path(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(name: str):
    """``(module imported, names)`` for every import of the package in ``name``, lazy ones included."""
    parts = name.split(".")
    package = parts if _module_path(name).name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(_module_path(name).read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            yield ".".join(base + (node.module.split(".") if node.module else [])), [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("acoustic_gmm"):
            yield node.module.partition(".")[2], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("acoustic_gmm."):
                    yield a.name.partition(".")[2], []


def _layer(name: str) -> str:
    return name.split(".")[0] if name else ""


def test_the_top_level_is_the_layers():
    entries = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()
               if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert entries == set(LAYERS) | {"__init__"}


@pytest.mark.parametrize("name", [m for m in MODULES if _layer(m) in LAYERS])
def test_imports_go_down_the_layers_and_share_no_private_name(name):
    own = LAYERS[_layer(name)]
    for module, names in _imports(name):
        if module and _layer(module) in LAYERS:
            assert LAYERS[_layer(module)] <= own and (module.split(".")[0] == name.split(".")[0]
                                                       or LAYERS[_layer(module)] < own), \
                f"acoustic_gmm.{name} imports acoustic_gmm.{module}, a layer above or beside it"
        private = [n for n in names if n.startswith("_") and n != "__version__"
                   and not (module == name and f"{module}.{n}" in MODULES)]  # a package loading its own modules
        assert not private, f"acoustic_gmm.{name} imports private names of acoustic_gmm.{module}: {private}"


def test_no_import_cycle_inside_the_package():
    graph = {m: {mod for mod, _ in _imports(m) if mod in MODULES and mod != m} for m in MODULES}
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


@pytest.mark.parametrize("name", MODULES)
def test_modules_are_small_enough_to_read_top_to_bottom(name):
    n = len(_module_path(name).read_text().splitlines())
    assert n <= MAX_LINES, f"acoustic_gmm.{name}: {n} lines; split it along its seams"


def test_the_cli_only_parses_calls_and_prints():
    names = [m for m in MODULES if _layer(m) == "cli"]
    commands = []
    for name in names:
        tree = ast.parse(_module_path(name).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and not n.level}
        assert "numpy" not in imported, name
        commands += [f for f in tree.body if isinstance(f, ast.FunctionDef)
                     and any("command" in ast.unparse(d) for d in f.decorator_list)]
    assert len(commands) == 19  # fifteen commands and the four of `acoustic-gmm ivector`
    # the group finds each command in the module its table names, and the table names every command there is
    import click

    from acoustic_gmm.cli import main
    from acoustic_gmm.cli._main import COMMANDS

    for name, module in COMMANDS.items():
        assert main.get_command(None, name).callback.__module__ == f"acoustic_gmm.cli.{module}"
    defined = {c.name for m in set(COMMANDS.values()) for c in vars(importlib.import_module(f"acoustic_gmm.cli.{m}")).values()
               if isinstance(c, click.Command) and not c.callback.__qualname__.startswith("ivector_")}
    assert defined == set(COMMANDS)
    for f in commands:
        body = f.body[1:] if isinstance(f.body[0], ast.Expr) else f.body  # without the docstring (the help text)
        assert body[-1].end_lineno - body[0].lineno + 1 <= 25, f"acoustic-gmm {f.name}: the command does library work"


@pytest.mark.parametrize("name", [m for m in MODULES if m != "__init__"])
def test_every_module_declares_its_public_names(name):
    module = importlib.import_module(f"acoustic_gmm.{name}")
    assert module.__doc__ and len(module.__doc__.splitlines()) >= 3, f"acoustic_gmm.{name} needs an opening comment"
    assert isinstance(module.__all__, list), name  # a private module may offer nothing beyond its layer
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"acoustic_gmm.{name}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("layer", [k for k in LAYERS if k != "cli" and (PACKAGE / k / "__init__.py").exists()])
def test_each_layer_exports_exactly_what_its_modules_declare(layer):
    package = importlib.import_module(f"acoustic_gmm.{layer}")
    declared = set()
    for name in MODULES:
        if name.startswith(f"{layer}.") and name.count(".") == 1:
            declared |= set(importlib.import_module(f"acoustic_gmm.{name}").__all__)
    assert set(package.__all__) == declared
    for n in package.__all__:
        assert getattr(package, n) is not None
