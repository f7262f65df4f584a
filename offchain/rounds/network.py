"""Finding the round registry on the connected chain, beside MedicalAccess."""

from __future__ import annotations

from offchain.chain import AccessClient
from offchain.deployments import find_deployment
from offchain.rounds.client import RoundsClient
from offchain.rounds.errors import RoundsError

REGISTRY_CONTRACT = "RoundRegistry"


def rounds_client(access: AccessClient, registry: str | None = None) -> RoundsClient:
    """The RoundRegistry at ``registry`` (default: the one recorded for this chain), signing as ``access``'s account."""
    from ape import chain, project

    from_block = access.from_block
    if registry is None:
        deployment = find_deployment(chain.chain_id, name=REGISTRY_CONTRACT)
        registry, from_block = deployment.address, deployment.block
    if not chain.provider.get_code(registry):
        raise RoundsError(f"no contract code at {registry} on chain {chain.chain_id}")
    return RoundsClient(project.RoundRegistry.at(registry), access.account, from_block=from_block)
