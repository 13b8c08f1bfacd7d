"""The package stays layered by role: no module imports upward, and no modules import each other in a circle.

The layers are declared once, in pyproject.toml (``[tool.importlinter]``); docs/architecture.md explains them.
"""

from __future__ import annotations

import os
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_every_role_imports_only_the_roles_below_it() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter reads its contract from pyproject.toml in the working directory
    try:
        assert lint_imports(no_cache=True) == 0, "an upward import: run `lint-imports` for the chain"
    finally:
        os.chdir(cwd)


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = grimp.build_graph("freshrec", cache_dir=None)
    circles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert not circles, f"modules that import each other, directly or through others: {circles}"
