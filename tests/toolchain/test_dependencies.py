"""Every third-party module the library imports is a dependency pyproject.toml declares.

A module that only arrives through another package (web3 and requests through eth-ape) breaks the
day that package drops it, and its version floats with it.
"""

import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from source_imports import absolute_imports

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ("offchain", "fl", "scripts")
OURS = {"offchain", "fl", "scripts", "contracts", "tests", "bench"}


def top_level_imports(path: Path) -> set[str]:
    return {module.split(".")[0] for module in absolute_imports(path)}


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(line).name.lower().replace("_", "-") for line in project["dependencies"]}


def undeclared(paths, declared: set[str]) -> dict[str, list[str]]:
    """Third-party modules imported by `paths` that no declared distribution provides, with what provides them."""
    providers = packages_distributions()
    missing: dict[str, list[str]] = {}
    for path in paths:
        for module in top_level_imports(path) - OURS - set(sys.stdlib_module_names):
            dists = [d.lower().replace("_", "-") for d in providers.get(module, [module])]
            if not declared.intersection(dists):
                missing[module] = dists
    return missing


def test_every_library_import_is_a_declared_dependency():
    paths = [path for folder in LIBRARY for path in (ROOT / folder).rglob("*.py")]
    assert len(paths) > 50
    assert undeclared(paths, declared_distributions()) == {}


def test_an_import_only_a_dependency_brings_is_reported(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("import requests\nfrom web3 import Web3\nimport json\nfrom . import sibling\nimport offchain\n")
    declared = declared_distributions()
    assert undeclared([source], declared) == {}
    assert undeclared([source], declared - {"requests"}) == {"requests": ["requests"]}
    assert set(undeclared([source], {"eth-ape"})) == {"requests", "web3"}
