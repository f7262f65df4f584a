"""What the consortium admin scripts share: where deployments are recorded, how the contract,
the signing account, addresses and records are resolved, and how refusals become clear errors.

Deployments are recorded as :mod:`offchain.deployments` describes (``.medshare/deployments.json``
by default). A local anvil forgets
everything when the command that started it exits, so on the default local network only
``deploy`` itself is useful; for a session of commands against a local chain, start ``anvil``
yourself and point every command at it::

    anvil --port 8545 &
    ape run deploy --network ethereum:local:foundry --provider-settings '{"host": "http://127.0.0.1:8545"}'

"""

from collections.abc import Callable
from typing import Any

import click
from ape import accounts, chain, networks, project
from ape.exceptions import ContractLogicError
from eth_utils import is_address, to_checksum_address

from offchain import deployments
from offchain.contract_client import ChainRefusal, refusals
from offchain.ipfs.cid import CID, InvalidCID

# Role names on the command line -> the contract's role-id getters.
ROLES = {
    "admin": "DEFAULT_ADMIN_ROLE",
    "guardian": "GUARDIAN_ROLE",
    "data-owner": "DATA_OWNER_ROLE",
    "doctor": "DOCTOR_ROLE",
    "researcher": "RESEARCHER_ROLE",
    "patient": "PATIENT_ROLE",
    "emergency": "EMERGENCY_ROLE",
    "coordinator": "COORDINATOR_ROLE",
    "participant": "PARTICIPANT_ROLE",
}

CONTRACT_HELP = "MedicalAccess address (default: the one recorded for this chain in .medshare/deployments.json)."


def record_deployment(contract, deployer: str, block: int):
    """Remember the deployed ``contract`` on the connected chain; returns the file it went to."""
    abi = [entry.model_dump(mode="json", by_alias=True) for entry in contract.contract_type.abi]
    deployment = deployments.Deployment(
        contract.address, deployer, block, contract.txn_hash, deployments.abi_digest(abi)
    )
    return deployments.record_deployment(chain.chain_id, deployment, name=contract.contract_type.name)


def load_access(address: str | None):
    """The MedicalAccess at ``address``, or at the address recorded for the connected chain."""
    if address is None:
        try:
            address = deployments.find_deployment(chain.chain_id).address
        except deployments.DeploymentNotFound as error:
            raise click.ClickException(str(error)) from None
    address = parse_address(address, "--contract")
    if not chain.provider.get_code(address):
        raise click.ClickException(
            f"no contract code at {address} on chain {chain.chain_id} (a local anvil forgets its "
            "deployments when it exits; deploy again on this chain)"
        )
    return project.MedicalAccess.at(address)


def signer(account):
    """The ``--account`` given, else on a local network the first test account."""
    if account is not None:
        return account
    if networks.provider.network.is_local:
        return accounts.test_accounts[0]
    raise click.ClickException("--account ALIAS is required on a live network")


def parse_address(value: str, what: str = "address") -> str:
    if not is_address(value):
        raise click.ClickException(f"{what}: {value!r} is not an Ethereum address")
    return to_checksum_address(value)


def parse_record(access, value: str, owner: str) -> bytes:
    """A record id from its 0x-prefixed 32-byte hex, or from the CID of any version of ``owner``'s record."""
    if value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    try:
        cid = CID.parse(value)
    except InvalidCID as err:
        raise click.ClickException(f"record: {value!r} is neither a 0x-prefixed record id nor a CID ({err})") from None
    return bytes(transact_or_fail(access, lambda: access.recordIdOf(owner, bytes(cid))))


def live_record(access, record: bytes) -> tuple[str, str]:
    """The (owner, patient) of a registered, unretired record; a clear error otherwise."""
    try:
        owner, patient, _, retired = access.recordOf(record)
    except ContractLogicError:
        raise click.ClickException(f"record 0x{record.hex()} is not registered on chain {chain.chain_id}") from None
    if retired:
        raise click.ClickException(f"record 0x{record.hex()} is retired")
    return owner, patient


def require_owner_or_patient(access, record: bytes, caller) -> None:
    owner, patient = live_record(access, record)
    if caller.address not in (owner, patient):
        raise click.ClickException(
            f"{caller.address} is neither the owner ({owner}) nor the patient ({patient}) of record 0x{record.hex()}"
        )


def transact_or_fail(access, send: Callable[[], Any]) -> Any:
    """Run a call or transaction of ``access``, turning a revert into a clear error and exit status 1."""
    try:
        with refusals(access):
            return send()
    except ChainRefusal as refusal:
        raise click.ClickException(str(refusal)) from None


contract_option = click.option("--contract", "contract_address", default=None, help=CONTRACT_HELP)
