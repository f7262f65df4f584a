"""Deploy MedicalAccess and the RoundRegistry bound to it, and record where they went.

    ape run deploy [--network polygon:amoy:node] [--account ALIAS] [--admin ADDRESS]

The deployment is recorded in .medshare/deployments.json under the chain id, where grant, revoke
and participants find it. On the default local network the anvil (and the deployment) vanish when
the command exits.
"""

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand, account_option

from offchain.deployments import find_deployment
from scripts._admin import parse_address, record_deployment, signer


def deploy(deployer, admin: str):
    """Deploy MedicalAccess with ``admin`` as consortium admin, then its RoundRegistry, and record
    both; returns MedicalAccess."""
    access = _deploy_and_record(deployer, project.MedicalAccess, admin)
    _deploy_and_record(deployer, project.RoundRegistry, access)
    return access


def _deploy_and_record(deployer, contract_type, *args):
    contract = deployer.deploy(contract_type, *args)
    receipt = chain.provider.get_receipt(contract.txn_hash)
    record_deployment(contract, deployer.address, receipt.block_number)
    return contract


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@account_option(prompt=False)
@click.option("--admin", default=None, help="Consortium admin address (default: the deploying account).")
def cli(account, admin):
    deployer = signer(account)
    admin = parse_address(admin, "--admin") if admin else deployer.address
    access = deploy(deployer, admin)
    click.echo(f"MedicalAccess deployed at {access.address} on chain {chain.chain_id}; admin {admin}")
    click.echo(f"RoundRegistry deployed at {find_deployment(chain.chain_id, name='RoundRegistry').address}")
