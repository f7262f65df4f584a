"""fl/ knows neither the chain nor the store: the chain path and the simulation run its round steps
(fl.round) over a board and a store they bring, so fl imports nothing of offchain, Ape or IPFS."""

import ast
from pathlib import Path

import pytest

FL = Path(__file__).resolve().parents[2] / "fl"
FORBIDDEN = ("offchain", "ape", "ape_ethereum", "ethpm_types", "web3", "eth_account", "ipfshttpclient", "scripts")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def crossings(path: Path) -> list[str]:
    return sorted(module for module in imported_modules(path) if module.split(".")[0] in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(FL.rglob("*.py")), ids=lambda path: str(path.relative_to(FL)))
def test_fl_imports_nothing_of_the_chain_or_the_store(path):
    assert crossings(path) == []


def test_the_check_sees_a_crossing(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import torch\nfrom offchain.rounds.study import Study\n\ndef f():\n    import ape\n")
    assert crossings(planted) == ["ape", "offchain.rounds.study"]
