"""Setting a consortium up: its contracts deployed and recorded, its members enrolled, their keys published.

Every set-up goes through here (``medshare fl run``, ``./run demo``, the Amoy
rehearsal, the tests' and benches' consortia):

* :func:`deploy_contracts` deploys MedicalAccess and the RoundRegistry through
  :mod:`offchain.chain.deploy` and records them (a throwaway chain's are not
  recorded); :func:`recorded_or_deployed` reuses the recorded ones while their
  code is on chain;
* :func:`enrol` funds a study's accounts, gives them their roles in as few
  transactions as fit a block (:func:`offchain.members.add_members`, which sends
  nothing for a role already held) and publishes each one's key;
* :func:`ensure_published_key` opens (or creates) an account's keystore and
  publishes its current key unless the chain holds it already.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offchain.chain.access import AccessClient
from offchain.chain.deploy import Deployed, deploy
from offchain.chain.deployments import ACCESS_CONTRACT, DeploymentNotFound, find_deployment
from offchain.chain.roles import Role
from offchain.crypto import KeySuite, Keystore
from offchain.errors import MedShareError
from offchain.members import MemberChange, add_members
from offchain.rounds.registry import REGISTRY_CONTRACT, rounds_client
from offchain.settings import Settings

if TYPE_CHECKING:
    from offchain.rounds.study import Member

FUNDING_WEI = 100 * 10**18
"""What :func:`enrol` gives an account that holds nothing (a chain that did not fund it)."""


class KeyVersionMismatch(MedShareError):
    """The chain holds a key version the keystore cannot follow from (another keystore published since)."""


@dataclass(frozen=True)
class ConsortiumContracts:
    """The consortium's MedicalAccess and RoundRegistry (Ape contract instances), and what was
    deployed to make them (empty when they were found recorded)."""

    access: Any
    registry: Any
    deployed: tuple[Deployed, ...] = ()

    @property
    def from_block(self) -> int:
        """The block the contracts were deployed in (0 when not deployed now): where their history starts."""
        return min((each.deployment.block for each in self.deployed), default=0)


def deploy_contracts(admin: Any, *, record: bool = True, force: bool = False,
                     path: Path | None = None) -> ConsortiumContracts:
    """Deploy the consortium's contracts from ``admin`` (its admin), recorded in the deployments file
    (``path``, default :func:`~offchain.chain.deployments.deployments_file`) unless ``record`` is False."""
    from ape import project

    deployed = deploy(admin, admin.address, force=force, path=path, record=record)
    addresses = {each.name: each.address for each in deployed}
    return ConsortiumContracts(project.MedicalAccess.at(addresses[ACCESS_CONTRACT]),
                               project.RoundRegistry.at(addresses[REGISTRY_CONTRACT]), tuple(deployed))


def recorded_or_deployed(admin: Any) -> ConsortiumContracts:
    """The contracts recorded for the connected chain while both have code there; else deployed now
    from ``admin`` and recorded in their place (none recorded, or gone with an earlier chain)."""
    from ape import chain, project

    try:
        access = find_deployment(chain.chain_id, name=ACCESS_CONTRACT)
        registry = find_deployment(chain.chain_id, name=REGISTRY_CONTRACT)
    except DeploymentNotFound:
        pass
    else:
        if chain.provider.get_code(access.address) and chain.provider.get_code(registry.address):
            return ConsortiumContracts(project.MedicalAccess.at(access.address),
                                       project.RoundRegistry.at(registry.address))
    return deploy_contracts(admin, force=True)


def open_keystore(path: Path, passphrase: str, *, suite: KeySuite = KeySuite.X25519) -> Keystore:
    """The keystore at ``path``, created (with a key of ``suite``) on first use."""
    if path.exists():
        return Keystore.open(path, passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Keystore.create(path, passphrase, suite=suite)


def ensure_published_key(access: AccessClient, settings: Settings, passphrase: str, *,
                         suite: KeySuite = KeySuite.X25519) -> Keystore:
    """The signer's keystore in ``settings.home`` (created on first use, with a key of ``suite``),
    its current key published (not sent again when the chain holds it already)."""
    path = settings.keystore_path(access.address)
    keystore = open_keystore(path, passphrase, suite=suite)
    published = access.encryption_key(access.address)
    if published.version != keystore.current_version or published.public_key != keystore.public_key():
        if published.version + 1 != keystore.current_version:
            raise KeyVersionMismatch(f"{access.address}: the chain holds key version {published.version}, "
                                     f"keystore {path} is at {keystore.current_version}")
        access.publish_encryption_key(keystore.public_key(), keystore.suite())
    return keystore


def fund(admin: Any, accounts: Sequence[Any], wei: int = FUNDING_WEI) -> None:
    """Give each of ``accounts`` that holds nothing ``wei`` from ``admin``."""
    for account in accounts:
        if account.balance == 0:
            admin.transfer(account, wei)


def enrol(access_contract: Any, registry_contract: Any, admin: Any, coordinator: Any, hospitals: Sequence[Any],
          others: Sequence[Any], settings: Settings, passphrase: str, *,
          homes: Mapping[str, Settings] | None = None) -> dict[str, Member]:
    """Make the accounts a consortium's study members: funded, given their roles, keys published.

    ``coordinator`` gets COORDINATOR, ``hospitals`` PARTICIPANT, ``others``
    (auditors) RESEARCHER unless they hold a role already (publishing a key
    takes membership), all in one batch from ``admin``; each gets a keystore in
    ``settings.home`` (or in its own home, ``homes[address]``, with its own
    store) and its key published. Returns each account's
    :class:`~offchain.rounds.study.Member`, by address.
    """
    from offchain.ipfs import open_store
    from offchain.rounds.study import Member

    everyone = [coordinator, *hospitals, *others]
    fund(admin, everyone)
    admin_client = AccessClient(access_contract, admin)
    learning = {coordinator.address, *(hospital.address for hospital in hospitals)}
    changes = [MemberChange(Role.COORDINATOR, coordinator.address),
               *(MemberChange(Role.PARTICIPANT, hospital.address) for hospital in hospitals),
               *(MemberChange(Role.RESEARCHER, other.address) for other in others
                 if other.address not in learning and not admin_client.roles_of(other.address))]
    add_members(admin_client, changes)
    shared = open_store(settings) if not homes else None
    members = {}
    for account in everyone:
        own = (homes or {}).get(account.address, settings)
        access = AccessClient(access_contract, account)
        keystore = ensure_published_key(access, own, passphrase)
        store = shared or open_store(own)
        members[account.address] = Member(rounds_client(access, registry_contract.address), access, store, keystore)
    return members
