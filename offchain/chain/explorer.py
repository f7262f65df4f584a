"""Publishing the consortium's contract sources to the network's block explorer (Polygonscan on Amoy).

ape-etherscan serves the explorer: it finds each contract's creation
transaction through the explorer's API (for the constructor arguments),
builds Etherscan's ``verifysourcecode`` request (the compiler's standard-JSON
input, compiler version, contract name, optimizer settings, EVM version,
licence) and waits for the verdict. Polygonscan is served by Etherscan's v2
API, where one key (``ETHERSCAN_API_KEY``) covers every chain; ape-config.yaml
names the Amoy endpoints, so nothing else is looked up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from offchain.chain import deployments
from offchain.errors import MedShareError

API_KEY_ENV = "ETHERSCAN_API_KEY"


class VerificationUnavailable(MedShareError):
    """The connected network has no block explorer to verify on, or no API key is set."""


@dataclass(frozen=True)
class Verified:
    """A contract whose source the explorer accepted, and where to see it."""

    name: str
    address: str
    url: str


def verify_deployments(names: Sequence[str] | None = None, path: Path | None = None) -> list[Verified]:
    """Verify the contracts recorded for the connected chain (all of :data:`offchain.chain.deploy.CONTRACTS`
    that are recorded, or ``names``) on the network's explorer."""
    from ape import chain, networks, project

    from offchain.chain.deploy import CONTRACTS

    network = networks.provider.network
    explorer = network.explorer
    if explorer is None:
        raise VerificationUnavailable(
            f"{network.ecosystem.name}:{network.name} has no block explorer to verify on "
            "(ape-etherscan serves polygon:amoy and polygon:mainnet)"
        )
    if not os.environ.get(API_KEY_ENV):
        raise VerificationUnavailable(f"set {API_KEY_ENV} to your Etherscan API key (its v2 API serves Polygonscan)")
    wanted = list(names) if names else [name for name, _ in CONTRACTS if name in project.contracts]
    done = []
    with _contracts_cache_left_as_found(project.contracts_folder / ".cache"):
        for name in wanted:
            deployment = deployments.find_deployment(chain.chain_id, path, name=name)
            getattr(project, name).at(deployment.address)  # tells Ape the address's contract type
            explorer.publish_contract(deployment.address)
            done.append(Verified(name, deployment.address, explorer.get_address_url(deployment.address) + "#code"))
    return done


@contextmanager
def _contracts_cache_left_as_found(cache: Path) -> Iterator[None]:
    """Remove what the block leaves in the contracts folder's dependency cache.

    Collecting the sources a contract imports, ape-etherscan has Ape copy
    whole dependencies (OpenZeppelin's 500-odd files) into
    ``contracts/.cache``; Ape lists at most 500 files of the contracts
    folder, so after that the project's own sources fall out of its view
    (RoundRegistry goes missing). The cache is Ape's, rebuilt when a
    compile needs it."""
    before = {path for path in cache.rglob("*")} if cache.exists() else None
    try:
        yield
    finally:
        if before is None:
            shutil.rmtree(cache, ignore_errors=True)
        elif cache.exists():
            added = [path for path in cache.rglob("*") if path not in before]
            for path in sorted(added, key=lambda item: len(item.parts), reverse=True):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
