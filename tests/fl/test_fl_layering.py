"""fl/ knows neither the chain nor the store: the chain path and the simulation run its round steps
(fl.round) over a board and a store they bring, so fl imports nothing of offchain, Ape or IPFS."""

from pathlib import Path

import pytest
from source_imports import absolute_imports

FL = Path(__file__).resolve().parents[2] / "fl"
FORBIDDEN = ("offchain", "ape", "ape_ethereum", "ethpm_types", "web3", "eth_account", "ipfshttpclient", "scripts")


def crossings(path: Path) -> list[str]:
    return sorted(module for module in absolute_imports(path) if module.split(".")[0] in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(FL.rglob("*.py")), ids=lambda path: str(path.relative_to(FL)))
def test_fl_imports_nothing_of_the_chain_or_the_store(path):
    assert crossings(path) == []


def test_the_check_sees_a_crossing(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import torch\nfrom offchain.rounds.study import Study\n\ndef f():\n    import ape\n")
    assert crossings(planted) == ["ape", "offchain.rounds.study"]
