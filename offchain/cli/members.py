"""``medshare members`` (and ``ape run members``): consortium roles.

    medshare members add ROLE ADDRESS [--label TEXT]      or   add --csv FILE
    medshare members remove ROLE ADDRESS                  or   remove --csv FILE
    medshare members list [ROLE]

A members file has rows ``role,address[,label]``. Every row is checked before
anything is sent, and a bad row refuses the whole file; the rest go out in
one transaction. Only consortium admins change membership; a removal takes
effect at once (a removed doctor's grants are void for good).
"""

from __future__ import annotations

from pathlib import Path

import click

from offchain.cli.session import ADDRESS, ChainOptions, chain_options, connected, echo_sent, user_errors
from offchain.members import MemberChange, add_members, list_members, read_members_csv, remove_members
from offchain.roles import ROLE_NAMES, Role

ROLE = click.Choice(ROLE_NAMES, case_sensitive=False)


@click.group()
def members() -> None:
    """Give, take and list consortium roles (one member, or many from a CSV file in one transaction)."""


def _changes(role: str | None, address: str | None, label: str, csv: Path | None) -> list[MemberChange]:
    if csv is not None:
        if role or address:
            raise click.UsageError("give either ROLE ADDRESS or --csv FILE, not both")
        return read_members_csv(csv)
    if not (role and address):
        raise click.UsageError("give ROLE and ADDRESS, or --csv FILE")
    return [MemberChange(Role.parse(role), address, label)]


def _membership_command(name: str, change, done: str, help_text: str):
    @members.command(name=name, help=help_text)
    @chain_options
    @click.argument("role", required=False, type=ROLE, metavar="[ROLE]")
    @click.argument("address", required=False, type=ADDRESS)
    @click.option("--label", default="", help="A name for the report only (e.g. the hospital's); not stored.")
    @click.option("--csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="Apply every row of FILE (columns role,address[,label]) in one transaction.")
    @user_errors
    def command(chain: ChainOptions, role: str | None, address: str | None, label: str, csv: Path | None) -> None:
        changes = _changes(role, address, label, csv)
        with connected(chain) as client:
            outcomes = change(client, changes)
        for number, outcome in enumerate(outcomes, start=1):
            member = outcome.change.address + (f" ({outcome.change.label})" if outcome.change.label else "")
            role_name = outcome.change.role.label
            what = f"{done} the {role_name} role" if outcome.changed else f"unchanged ({done} the {role_name} role already)"
            click.echo(f"{number}. {member} {what}")
        echo_sent(client.sent)

    return command


ROLE_HELP = f"\n\nROLE is one of {', '.join(ROLE_NAMES)}."
add = _membership_command("add", add_members, "holds",
                          "Give ADDRESS the ROLE, or apply a CSV file of additions (consortium admins only)."
                          + ROLE_HELP)
remove = _membership_command("remove", remove_members, "no longer holds",
                             "Take the ROLE from ADDRESS at once, or apply a CSV file of removals (admins only)."
                             + ROLE_HELP)


@members.command(name="list", help="List the members of ROLE (default: of every role)." + ROLE_HELP)
@chain_options
@click.argument("role", required=False, type=ROLE, metavar="[ROLE]")
@user_errors
def list_(chain: ChainOptions, role: str | None) -> None:
    with connected(chain) as client:
        found = list_members(client, [Role.parse(role)] if role else list(Role))
    for each, addresses in found.items():
        click.echo(f"{each.label}: {', '.join(addresses) if addresses else '-'}")
