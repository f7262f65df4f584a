"""Deploying the consortium's contracts and recording where they went.

:func:`deploy` deploys every contract of :data:`CONTRACTS` in order and
records each (address, deployer, block, transaction, ABI digest) under the
chain id, as :mod:`offchain.chain.deployments` describes (a throwaway chain's
are not recorded). It refuses, before sending anything, to replace a recorded
deployment whose code is still on chain, unless ``force`` is given: the old
address would be forgotten while its records and grants live on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offchain.chain import deployments
from offchain.errors import MedShareError


class AlreadyDeployed(MedShareError):
    """A recorded deployment still has code on chain and ``force`` was not given."""


@dataclass(frozen=True)
class Deployed:
    """One contract deployed now: its name, where it went, and what it cost."""

    name: str
    address: str
    deployment: deployments.Deployment
    gas_used: int


ConstructorArguments = Callable[[str, dict[str, str]], Sequence[Any]]
"""The constructor's arguments from the admin address and the addresses deployed so far (by name)."""

CONTRACTS: list[tuple[str, ConstructorArguments]] = [
    ("MedicalAccess", lambda admin, deployed: [admin]),
    # The round registry reads roles from the consortium's MedicalAccess (contracts/rounds/).
    ("RoundRegistry", lambda admin, deployed: [deployed["MedicalAccess"]]),
]
"""What a consortium deploys, in order; a contract that takes another's address reads it from
``deployed``. A contract the project does not compile (yet) is skipped."""


def _contracts() -> list[tuple[str, ConstructorArguments]]:
    """:data:`CONTRACTS` that the project compiles (a contract not yet in the project is skipped)."""
    from ape import project

    return [(name, arguments) for name, arguments in CONTRACTS if name in project.contracts]


def check_replaceable(chain_id: int, names: Sequence[str], *, force: bool, path: Path | None = None) -> None:
    """Refuse (AlreadyDeployed) if any of ``names`` is recorded on ``chain_id`` with code still there."""
    from ape import chain

    for name in names:
        try:
            recorded = deployments.find_deployment(chain_id, path, name=name)
        except deployments.DeploymentNotFound:
            continue
        if not force and chain.provider.get_code(recorded.address):
            raise AlreadyDeployed(
                f"{name} is already deployed on chain {chain_id} at {recorded.address} (block {recorded.block}) "
                "and its code is still there; deploying again would forget it: pass --force to replace it"
            )


def deploy(account: Any, admin: str, *, force: bool = False, path: Path | None = None,
           record: bool = True) -> list[Deployed]:
    """Deploy the consortium's contracts from ``account`` with ``admin`` as consortium admin, and record
    them (unless ``record`` is False: a throwaway chain's contracts must not replace the records of
    another chain with the same id)."""
    from ape import chain, project
    from ape.logging import LogLevel, logger

    contracts = _contracts()
    chain_id = chain.chain_id
    if record:
        check_replaceable(chain_id, [name for name, _ in contracts], force=force, path=path)
    done: list[Deployed] = []
    addresses: dict[str, str] = {}
    for name, arguments in contracts:
        container = getattr(project, name)
        with logger.at_level(LogLevel.WARNING):  # the caller reports each deployment in one line
            instance = account.deploy(container, *arguments(admin, addresses))
        receipt = chain.provider.get_receipt(instance.txn_hash)
        abi = deployments.abi_json(container.contract_type)
        deployment = deployments.Deployment(
            instance.address, account.address, receipt.block_number, receipt.txn_hash, deployments.abi_digest(abi)
        )
        if record:
            deployments.record_deployment(chain_id, deployment, path, name=name)
        addresses[name] = instance.address
        done.append(Deployed(name, instance.address, deployment, receipt.gas_used))
    return done
