"""``medshare deploy`` (and ``ape run deploy``): deploy the consortium's contracts and record them."""

from __future__ import annotations

import click

from offchain.chain import deploy as deployment
from offchain.cli.session import ADDRESS, ChainOptions, connected_account, network_options, user_errors
from offchain.chain.deployments import deployments_file
from offchain.errors import InvalidInput
from offchain.chain.network import on_throwaway_chain


@click.command()
@network_options
@click.option("--admin", type=ADDRESS, default=None, help="The consortium admin (default: the deploying account).")
@click.option("--force", is_flag=True,
              help="Replace a recorded deployment even though its code is still on chain.")
@user_errors
def deploy(chain: ChainOptions, admin: str | None, force: bool) -> None:
    """Deploy the consortium's contracts and record them for this chain.

    MedicalAccess (and the consortium's other contracts) are recorded in
    $MEDSHARE_HOME/deployments.json, where every other command finds them. A
    recorded deployment whose code is still on chain is replaced only with
    --force."""
    from ape import chain as connected_chain

    with connected_account(chain) as account:
        if on_throwaway_chain():
            raise InvalidInput(
                "no chain to deploy to: no `medshare chain up` chain runs, and the throwaway anvil this command "
                "would start vanishes with it, taking the deployment along; start one with `medshare chain up`, "
                "or name a node with --rpc or --network")
        admin = admin or account.address
        deployed = deployment.deploy(account, admin, force=force)
        chain_id = connected_chain.chain_id
    for each in deployed:
        click.echo(f"{each.name} deployed at {each.address} on chain {chain_id}; admin {admin}")
        click.echo(f"  tx {each.deployment.transaction} (gas {each.gas_used:,}, block {each.deployment.block})")
    click.echo(f"recorded in {deployments_file()}")
