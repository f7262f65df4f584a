"""Where the consortium's MedicalAccess lives on each chain.

Deployments are recorded in ``$MEDSHARE_HOME/deployments.json`` (or the file
named by ``MEDSHARE_DEPLOYMENTS``), keyed by chain id::

    {"80002": {"address": "0x...", "deployer": "0x...", "block": 123}}

The deploy script writes it; the admin scripts and the ``medshare`` CLI read it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from offchain.settings import Settings


class DeploymentNotFound(LookupError):
    """No MedicalAccess is recorded for the chain."""


@dataclass(frozen=True)
class Deployment:
    """One deployment of MedicalAccess."""

    address: str
    deployer: str
    block: int


def deployments_file(settings: Settings | None = None) -> Path:
    """The deployments file: ``MEDSHARE_DEPLOYMENTS``, else ``$MEDSHARE_HOME/deployments.json``."""
    override = os.environ.get("MEDSHARE_DEPLOYMENTS")
    if override:
        return Path(override)
    return (settings or Settings.from_env()).home / "deployments.json"


def _read(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as error:
        raise DeploymentNotFound(f"{path} is not valid JSON ({error}); fix or delete it") from None


def record_deployment(chain_id: int, deployment: Deployment, path: Path | None = None) -> Path:
    """Remember ``deployment`` as the one on ``chain_id``; returns the file written."""
    path = path or deployments_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    known = _read(path)
    known[str(chain_id)] = asdict(deployment)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)
    return path


def find_deployment(chain_id: int, path: Path | None = None) -> Deployment:
    """The deployment recorded for ``chain_id``; :class:`DeploymentNotFound` if none."""
    path = path or deployments_file()
    entry = _read(path).get(str(chain_id))
    if entry is None:
        raise DeploymentNotFound(
            f"no MedicalAccess recorded for chain {chain_id} in {path}; deploy it on this network first "
            "(`ape run deploy`) or name it with --contract"
        )
    return Deployment(**entry)
