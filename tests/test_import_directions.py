"""Imports flow one way (DESIGN.md): read every module's imports and check the forbidden edges."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "metriclab"

#: module or package (as a path prefix under metriclab/) → metriclab modules it must not import.
FORBIDDEN = {
    "runs.py": ("metriclab.training", "metriclab.evaluation", "metriclab.export", "metriclab.cli"),
    "checkpoints.py": ("metriclab.training", "metriclab.evaluation", "metriclab.runs"),
    "evaluation/": ("metriclab.training", "metriclab.export", "metriclab.cli"),
    "bundle/": ("metriclab.training", "metriclab.export", "metriclab.runs", "metriclab.cli"),
    "gallery.py": ("metriclab.training", "metriclab.export"),
    "export.py": ("metriclab.training", "metriclab.cli"),
    "assemble.py": ("metriclab.training", "metriclab.evaluation", "metriclab.runs"),
    "config.py": ("metriclab.training", "metriclab.assemble", "metriclab.runs", "metriclab.export"),
    "data/": (
        "metriclab.training", "metriclab.evaluation", "metriclab.runs", "metriclab.models",
        "metriclab.losses", "metriclab.config", "metriclab.assemble",
    ),
    "models/": (
        "metriclab.training", "metriclab.evaluation", "metriclab.runs", "metriclab.config",
        "metriclab.assemble", "metriclab.losses",
    ),
    "losses/": (
        "metriclab.training", "metriclab.evaluation", "metriclab.runs", "metriclab.config",
        "metriclab.models",
    ),
    "distances.py": (
        "metriclab.training", "metriclab.evaluation", "metriclab.data", "metriclab.models",
        "metriclab.losses", "metriclab.config",
    ),
    "registry.py": ("metriclab.",),
    "atomic.py": ("metriclab.",),
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("prefix", sorted(FORBIDDEN))
def test_no_import_points_back_up(prefix: str) -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    mine = [f for f in files if f.relative_to(PACKAGE).as_posix().startswith(prefix)]
    assert mine, f"no module matches {prefix}"
    found = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in mine
        for name in sorted(_imports(path))
        if name.startswith(FORBIDDEN[prefix])
    ]
    assert not found, "; ".join(found)
