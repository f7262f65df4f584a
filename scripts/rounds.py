"""Federated studies from an admin's shell: create a study, open or cancel a round, show a study.

    ape run rounds create --participant ADDRESS... [--auditor ADDRESS...] [--aggregator NAME] [--min-updates N]
    ape run rounds open STUDY
    ape run rounds status STUDY
    ape run rounds cancel STUDY ROUND
        [--network ...] [--account ALIAS] [--contract ADDRESS] [--registry ADDRESS]

The account must hold COORDINATOR (for status, any). Rounds are normally run by
`medshare fl coordinator`; these commands are the same library calls, by hand. The contracts come
from .medshare/deployments.json (see deploy).
"""

import click
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain import AccessClient
from offchain.cli.fl import study_config, study_options
from offchain.contract_client import ChainRefusal
from offchain.ipfs import open_store
from offchain.rounds.coordinator import cancel_round, open_next_round
from offchain.rounds.errors import RoundsError
from offchain.rounds.network import rounds_client
from offchain.rounds.status import study_status
from offchain.rounds.study import Member
from scripts._admin import contract_option, load_access, signer

registry_option = click.option("--registry", default=None, help="RoundRegistry address (default: the recorded one).")


def _member(account, contract_address, registry) -> Member:
    access = AccessClient(load_access(contract_address), signer(account))
    try:
        return Member(rounds_client(access, registry), access, open_store(), None)
    except RoundsError as error:
        raise click.ClickException(str(error)) from None


def _guarded(action):
    try:
        return action()
    except (RoundsError, ChainRefusal) as error:
        raise click.ClickException(str(error)) from None


@click.group(help=__doc__)
def cli():
    pass


@cli.command(cls=ConnectedProviderCommand)
@account_option(prompt=False)
@contract_option
@registry_option
@study_options
def create(account, contract_address, registry, **options):
    """Create a study; prints its number."""
    config, min_updates = _guarded(lambda: study_config(**options))
    study = _guarded(lambda: _member(account, contract_address, registry).create_study(config, min_updates))
    click.echo(f"study {study.number} created (config {study.info.config_cid})")


@cli.command(name="open", cls=ConnectedProviderCommand)
@account_option(prompt=False)
@contract_option
@registry_option
@click.argument("study", type=int)
def open_(account, contract_address, registry, study):
    """Open the study's next round on its latest committed model."""
    member = _member(account, contract_address, registry)
    _guarded(lambda: open_next_round(member.study(study), click.echo))


@cli.command(cls=ConnectedProviderCommand)
@account_option(prompt=False)
@contract_option
@registry_option
@click.argument("study", type=int)
def status(account, contract_address, registry, study):
    """Show the study's rounds, their state and participants."""
    member = _member(account, contract_address, registry)
    for line in _guarded(lambda: study_status(member, study).lines()):
        click.echo(line)


@cli.command(cls=ConnectedProviderCommand)
@account_option(prompt=False)
@contract_option
@registry_option
@click.argument("study", type=int)
@click.argument("round_number", metavar="ROUND", type=int)
def cancel(account, contract_address, registry, study, round_number):
    """Cancel a round that missed its quorum by its deadline."""
    member = _member(account, contract_address, registry)
    _guarded(lambda: cancel_round(member.study(study), round_number))
    click.echo(f"study {study} round {round_number} cancelled")
