"""Where the consortium's contracts live on each chain.

Deployments are recorded in ``$MEDSHARE_HOME/deployments.json`` (or the file
named by ``MEDSHARE_DEPLOYMENTS``), keyed by chain id, then contract name::

    {"80002": {"MedicalAccess": {"address": "0x...", "deployer": "0x...", "block": 123,
                                 "transaction": "0x...", "abi_sha256": "..."},
               "RoundRegistry": {...}}}

A file written before contracts were named (the chain id mapping straight to
one MedicalAccess entry) still reads. The deploy flow writes it; the admin
scripts and the ``medshare`` CLI read it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from offchain import inputs
from offchain.errors import InvalidInput, MedShareError
from offchain.jsonfile import read_json_file
from offchain.settings import Settings


ACCESS_CONTRACT = "MedicalAccess"


class DeploymentNotFound(MedShareError, LookupError):
    """No deployment of the contract is recorded for the chain."""


class DeploymentsFileDamaged(InvalidInput):
    """The deployments file is not what the deploy flow writes (hand-edited, truncated): nothing is
    read from it, and nothing is written over it."""


@dataclass(frozen=True)
class Deployment:
    """One deployment of a contract: where, by whom, in which block and transaction, with which ABI."""

    address: str
    deployer: str
    block: int
    transaction: str = ""
    abi_sha256: str = ""


def abi_json(contract_type: Any) -> list[dict]:
    """A compiled contract's ABI as plain JSON: what its digest is taken of, and what a page's ethers reads."""
    return [entry.model_dump(mode="json", by_alias=True) for entry in contract_type.abi]


def abi_digest(abi: list[dict]) -> str:
    """SHA-256 (hex) of an ABI as canonical JSON: which interface a recorded address was deployed with."""
    return hashlib.sha256(json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def deployments_file(settings: Settings | None = None) -> Path:
    """The deployments file: ``MEDSHARE_DEPLOYMENTS``, else ``$MEDSHARE_HOME/deployments.json``."""
    override = os.environ.get("MEDSHARE_DEPLOYMENTS")
    if override:
        return Path(override)
    return (settings or Settings.from_env()).home / "deployments.json"


def _read(path: Path) -> dict[str, dict[str, dict]]:
    def parse(known: Any) -> dict[str, dict[str, dict]]:
        if not isinstance(known, dict) or not all(isinstance(entry, dict) for entry in known.values()):
            raise TypeError("expected an object of chain ids, each an object of contracts")
        # The first format held one MedicalAccess per chain id.
        known = {chain: ({ACCESS_CONTRACT: entry} if "address" in entry else entry) for chain, entry in known.items()}
        for chain, contracts in known.items():
            for name, entry in contracts.items():
                _checked(entry, f"{path}: chain {chain}, {name}")
        return known

    return read_json_file(path, parse, "a deployments file", error=DeploymentsFileDamaged) or {}


def _checked(entry: Any, where: str) -> Deployment:
    """``entry`` as a :class:`Deployment`, every field checked; :class:`DeploymentsFileDamaged` naming it if not."""
    if not isinstance(entry, dict):
        raise DeploymentsFileDamaged(f"{where}: not an object; fix or delete the file")
    missing = [name for name in ("address", "deployer", "block") if name not in entry]
    unknown = sorted(set(entry) - set(Deployment.__dataclass_fields__))
    if missing or unknown:
        raise DeploymentsFileDamaged(f"{where}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else []))
            + "; fix or delete the file")
    try:
        address, deployer = inputs.address(str(entry["address"]), "address"), inputs.address(str(entry["deployer"]),
                                                                                          "deployer")
    except InvalidInput as error:
        raise DeploymentsFileDamaged(f"{where}: {error}; fix or delete the file") from None
    block = entry["block"]
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise DeploymentsFileDamaged(f"{where}: block {block!r} is not a block number; fix or delete the file")
    texts = {name: entry.get(name, "") for name in ("transaction", "abi_sha256")}
    if not all(isinstance(text, str) for text in texts.values()):
        raise DeploymentsFileDamaged(f"{where}: transaction and abi_sha256 must be text; fix or delete the file")
    return Deployment(address, deployer, block, **texts)


def record_deployment(chain_id: int, deployment: Deployment, path: Path | None = None, *,
                      name: str = ACCESS_CONTRACT) -> Path:
    """Remember ``deployment`` as the ``name`` contract on ``chain_id``; returns the file written."""
    path = path or deployments_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    known = _read(path)
    known.setdefault(str(chain_id), {})[name] = asdict(deployment)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)
    return path


def find_deployment(chain_id: int, path: Path | None = None, *, name: str = ACCESS_CONTRACT) -> Deployment:
    """The ``name`` contract's deployment recorded for ``chain_id``; :class:`DeploymentNotFound` if none."""
    path = path or deployments_file()
    entry = _read(path).get(str(chain_id), {}).get(name)
    if entry is None:
        raise DeploymentNotFound(
            f"no {name} recorded for chain {chain_id} in {path}; deploy it on this network first "
            "(`ape run deploy`) or name it with --contract"
        )
    return _checked(entry, f"{path}: chain {chain_id}, {name}")
