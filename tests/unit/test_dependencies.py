"""Every library the worker package imports is declared in pyproject.toml, not merely installed by another."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from tests.support.connector import REPO


def _canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> dict[str, str]:
    """Module name -> one file of the package that imports it."""
    modules: dict[str, str] = {}
    for path in sorted((REPO / "hf_connector").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.split(".")[0], path.relative_to(REPO).as_posix())
    return modules


def test_every_imported_library_is_a_declared_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # The product's optional extras count: a module behind one is imported only when its feature is used.
    product_extras = [line for extra in ("socks",) for line in project["optional-dependencies"][extra]]
    declared = {
        _canonical(re.split(r"[\s\[<>=~!;]", line, maxsplit=1)[0])
        for line in [*project["dependencies"], *product_extras]
    }
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for module, where in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module == "hf_connector":
            continue
        names = {_canonical(name) for name in distributions.get(module, [module])}
        if not names & declared:
            undeclared.append(f"{module} (imported in {where}; distribution {', '.join(sorted(names))})")
    assert undeclared == []
