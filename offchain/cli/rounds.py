"""``medshare rounds``: a coordinator's steps by hand, the same library calls `medshare fl coordinator` makes.

    medshare rounds create --participant ADDRESS... [--auditor ADDRESS...] [--aggregator NAME] [--min-updates N]
    medshare rounds open --study S
    medshare rounds status --study S
    medshare rounds cancel --study S --round N

``ape run rounds`` is this same command.
"""

from __future__ import annotations

import click

from offchain.cli.fl import ROUND, create, member_session, registry_option, status, study_option
from offchain.cli.session import chain_options, user_errors


@click.group()
def rounds() -> None:
    """Create a study, open or cancel a round, show a study: the coordinator's steps by hand."""


rounds.add_command(create)
rounds.add_command(status)


@rounds.command(name="open")
@chain_options
@registry_option
@study_option
@user_errors
def open_round(chain, registry, study):
    """Open the study's next round on its latest committed model (you must be its coordinator)."""
    from offchain.rounds.coordinator import open_next_round

    with member_session(chain, registry) as member:
        open_next_round(member.study(study), click.echo)


@rounds.command()
@chain_options
@registry_option
@study_option
@click.option("--round", "round_number", type=ROUND, required=True, help="The round to cancel.")
@user_errors
def cancel(chain, registry, study, round_number):
    """Cancel a round that missed its quorum by its deadline (you must be the study's coordinator), or
    any round a day past its deadline (anyone: its coordinator went silent)."""
    from offchain.rounds.coordinator import cancel_round

    with member_session(chain, registry) as member:
        cancel_round(member.study(study), round_number)
    click.echo(f"study {study} round {round_number} cancelled")
