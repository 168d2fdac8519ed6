"""The package's layering (docs/architecture.md): a package imports only packages below it."""

from __future__ import annotations

import ast
from pathlib import Path

import tunelab

SRC = Path(tunelab.__file__).parent
# Lower number = lower layer. The package root (tunelab/__init__.py) only registers resolvers.
LAYERS = {
    "core": 0,
    "world": 1,
    "models": 1,
    "data": 2,
    "adapters": 3,
    "objectives": 3,
    "scaling": 4,
    "evaluation": 5,
    "pruning": 6,
    "training": 7,
    "results": 8,
    "workflows": 9,
    "apps": 10,
    "cli": 10,
    "__main__": 10,
}


def tunelab_imports(path: Path) -> list[str]:
    """Every `tunelab.<x>` module a file imports, at any depth of the file (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tunelab."):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("tunelab.")]
    return found


def test_every_top_level_package_has_a_layer():
    tops = {
        p.stem if p.is_file() else p.name
        for p in SRC.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    assert tops - {"__init__"} <= set(LAYERS), sorted(tops - set(LAYERS))


def test_no_package_imports_a_higher_one():
    upward = []
    for path in SRC.rglob("*.py"):
        top = path.relative_to(SRC).parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        for module in tunelab_imports(path):
            target = module.split(".")[1]
            if LAYERS[target] > LAYERS[top]:
                upward.append(f"{path.relative_to(SRC)} imports {module}")
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from tunelab.training.run import train\n")
    assert tunelab_imports(bad) == ["tunelab.training.run"]
