"""Deploy MedicalAccess and record where it went.

    ape run deploy [--network polygon:amoy:node] [--account ALIAS] [--admin ADDRESS]

The deployment is recorded in .medshare/deployments.json under the chain id, where grant, revoke
and participants find it. On the default local network the anvil (and the deployment) vanish when
the command exits.
"""

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand, account_option

from scripts._admin import parse_address, record_deployment, signer


def deploy(deployer, admin: str):
    """Deploy MedicalAccess with ``admin`` as consortium admin and record it; returns the contract."""
    access = deployer.deploy(project.MedicalAccess, admin)
    receipt = chain.provider.get_receipt(access.txn_hash)
    record_deployment(access, deployer.address, receipt.block_number)
    return access


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@account_option(prompt=False)
@click.option("--admin", default=None, help="Consortium admin address (default: the deploying account).")
def cli(account, admin):
    deployer = signer(account)
    admin = parse_address(admin, "--admin") if admin else deployer.address
    access = deploy(deployer, admin)
    click.echo(f"MedicalAccess deployed at {access.address} on chain {chain.chain_id}; admin {admin}")
