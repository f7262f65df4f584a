"""The modules a Python file names in its absolute imports, read from its syntax tree (never run)."""

import ast
from pathlib import Path


def absolute_imports(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name, at the top or inside a function: ``import a.b``
    gives ``a.b``, ``from a.b import c`` gives ``a.b``; relative imports are left out."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules
