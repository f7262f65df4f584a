"""``medshare chain``: a local anvil that outlives the command, for a session of commands.

    medshare chain up [--port 8545] [--chain-id 31337] [--block-time SECONDS]
    medshare chain status
    medshare chain down
    medshare chain rehearse-amoy [--gas-price-gwei 30] [--json]
    medshare chain verify --network polygon:amoy:node

While it runs, every command on the default network uses it. Its accounts
are anvil's test accounts (``--account TEST::N``).
"""

from __future__ import annotations

import json

import click

from offchain.chain import explorer
from offchain.chain import localchain
from offchain.scenarios import rehearsal
from offchain.cli.session import ChainOptions, FiniteFloatRange, network_options, user_errors
from offchain.chain.network import connect


@click.group()
def chain() -> None:
    """Start, inspect and stop a local anvil chain that outlives the command."""


@chain.command()
@click.option("--port", type=click.IntRange(1, 65535), default=localchain.DEFAULT_PORT, show_default=True,
              help="The loopback port to listen on.")
@click.option("--chain-id", type=click.IntRange(1, 2**63 - 1), default=localchain.DEFAULT_CHAIN_ID,
              show_default=True, help="The chain id anvil reports (80002 to rehearse Amoy).")
@click.option("--block-time", type=FiniteFloatRange(0, 3600, min_open=True), default=None,
              help="Mine a block every this many seconds (default: one block per transaction).")
@user_errors
def up(port: int, chain_id: int, block_time: float | None) -> None:
    """Start a local anvil in the background (nothing happens if one runs already)."""
    local, started = localchain.up(port=port, chain_id=chain_id, block_time=block_time)
    state = "started" if started else "already running"
    click.echo(f"local chain {state}: {local.url} (chain id {local.chain_id}, pid {local.pid}, log {local.log})")


@chain.command()
@user_errors
def status() -> None:
    """Say whether the local chain runs, and where."""
    local = localchain.running()
    if local is None:
        click.echo("no local chain runs (start one with `medshare chain up`)")
        raise SystemExit(1)
    click.echo(f"local chain running: {local.url} (chain id {local.chain_id}, pid {local.pid})")


@chain.command()
@user_errors
def down() -> None:
    """Stop the local chain; everything on it is gone."""
    stopped = localchain.down()
    if stopped is None:
        click.echo("no local chain was recorded")
    elif stopped.was_running:
        click.echo(f"local chain stopped (pid {stopped.chain.pid})")
    else:
        click.echo(f"the recorded local chain (pid {stopped.chain.pid}) was not running; its record is forgotten")


@chain.command("rehearse-amoy")
@click.option("--gas-price-gwei", type=FiniteFloatRange(0, 1_000_000, min_open=True),
              default=rehearsal.DEFAULT_GAS_PRICE_GWEI, show_default=True,
              help="The gas price (gwei) the cost table is priced at.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object: chain id, network, confirmations, costs.")
@user_errors
def rehearse_amoy(gas_price_gwei: float, as_json: bool) -> None:
    """Rehearse the Polygon Amoy deployment offline, then print what each operation costs.

    Starts a throwaway anvil with Amoy's chain id (80002), 1-second blocks and
    a Polygon-like base fee, behind a proxy that refuses eth_getLogs over
    1,000 blocks as public endpoints do, and reaches it as polygon:amoy:node.
    Fresh throwaway accounts deploy, add members, upload a record, grant,
    fetch, revoke with rotation and run one federated round, each transaction
    waiting for 2 confirmations. Nothing is left behind. Takes about a minute.
    """
    result = rehearsal.rehearse_amoy(gas_price_gwei=gas_price_gwei, log=lambda line: click.echo(f"  {line}"))
    click.echo(f"\n{result.network} (chain id {result.chain_id}), {result.confirmations} confirmations per "
               f"transaction; eth_getLogs: {result.log_queries} queries, widest {result.widest_log_range:,} blocks, "
               f"{result.refused_log_queries} refused")
    click.echo(f"{'operation':<18}{'gas':>12}{f'POL at {gas_price_gwei:g} gwei':>22}")
    for name, cost in result.costs.items():
        click.echo(f"{name:<18}{cost.gas:>12,}{cost.pol:>22.6f}")
    if as_json:
        click.echo(json.dumps(result.as_json()))


@chain.command()
@network_options
@click.option("--contract", "names", multiple=True, metavar="NAME",
              help="A recorded contract to verify (repeatable; default: every recorded one).")
@user_errors
def verify(chain: ChainOptions, names: tuple[str, ...]) -> None:
    """Publish the recorded contracts' sources to the network's block explorer (Polygonscan on Amoy).

    Needs ETHERSCAN_API_KEY (Etherscan's v2 API key, which serves Polygonscan)."""
    with connect(chain.network, chain.rpc):
        done = explorer.verify_deployments(names)
    for each in done:
        click.echo(f"{each.name} at {each.address} verified: {each.url}")
