"""Finding the round registry on the connected chain, beside MedicalAccess."""

from __future__ import annotations

from offchain.chain.access import AccessClient
from offchain.chain.deployments import find_deployment
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
    _cache_chain_id(chain.provider.web3)
    # The registry's events go to the same site's event store as the access contract's: `fl status`
    # and the portal start warm, reading only the blocks since the last process.
    return RoundsClient(project.RoundRegistry.at(registry), access.account, from_block=from_block,
                        cache_folder=access.cache_folder)


def _cache_chain_id(web3) -> None:
    """Ask the node its chain id once per connection, not before every call: web3 validates each
    call's and transaction's chain id against the node's, one more round trip each time."""
    from web3.types import RPCEndpoint

    provider = web3.provider
    if hasattr(provider, "cacheable_requests"):
        provider.cacheable_requests = {RPCEndpoint("eth_chainId")}
        provider.cache_allowed_requests = True
