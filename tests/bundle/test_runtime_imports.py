"""Nothing the torch-free runtime imports may import torch (or faiss: torch must come first) at
module level; they import it inside the functions that need it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "metriclab"


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text("utf-8")).body:  # module level only, not in functions
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def _runtime_modules() -> list[str]:
    program = (
        "import sys; sys.modules['torch'] = None\n"
        "import metriclab, metriclab.bundle\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('metriclab'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True,
        cwd=PACKAGE.parent,
    )  # fmt: skip
    return done.stdout.split()


def test_runtime_modules_import_neither_torch_nor_faiss_at_top() -> None:
    modules = _runtime_modules()
    assert "metriclab.bundle.gallery" in modules and "metriclab.data" not in modules
    for module in modules:
        parts = module.split(".")
        path = PACKAGE.joinpath(*parts[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert not {"torch", "faiss"} & _top_level_imports(path), module


def test_lazy_top_level_and_old_names() -> None:
    import metriclab
    import metriclab.gallery
    from metriclab.bundle import Bundle, Gallery

    assert metriclab.Bundle is Bundle and metriclab.Gallery is Gallery
    assert metriclab.gallery.Gallery is Gallery and callable(metriclab.gallery.build_gallery)
    assert metriclab.data.digits is not None and "data" in dir(metriclab)
