"""``medshare members`` (and ``ape run members``): consortium roles.

    medshare members add ROLE ADDRESS [--label TEXT]      or   add --csv FILE
    medshare members remove ROLE ADDRESS                  or   remove --csv FILE
    medshare members list [ROLE]
    medshare members handover propose ADDRESS | accept | cancel | show

A members file has rows ``role,address[,label]``. Every row is checked before
anything is sent, and a bad row refuses the whole file; the rest go out in
transactions that fit a block. Only consortium admins change membership; a removal takes
effect at once (a removed doctor's grants are void for good). An admin hands
its seat to a successor in two steps: it proposes, the successor accepts (with
its own account); until then nothing changes hands.
"""

from __future__ import annotations

from pathlib import Path

import click

from offchain.cli.session import (
    ADDRESS,
    ChainOptions,
    chain_options,
    connected,
    echo_chunk,
    echo_sent,
    user_errors,
)
from offchain.members import (
    MemberChange,
    accept_admin_handover,
    add_members,
    cancel_admin_handover,
    list_members,
    pending_admin_handover,
    propose_admin_handover,
    read_members_csv,
    remove_members,
)
from offchain.chain.roles import ROLE_NAMES, Role

ROLE = click.Choice(ROLE_NAMES, case_sensitive=False)


@click.group()
def members() -> None:
    """Give, take and list consortium roles (one member, or many from a CSV file, checked whole first)."""


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
                  help="Apply every row of FILE (columns role,address[,label]): every row checked first, then in transactions that fit a block.")
    @user_errors
    def command(chain: ChainOptions, role: str | None, address: str | None, label: str, csv: Path | None) -> None:
        changes = _changes(role, address, label, csv)
        with connected(chain) as client:
            outcomes = change(client, changes, on_chunk=echo_chunk if csv is not None else None)
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


@members.group()
def handover() -> None:
    """Hand an admin seat to a successor in two steps: propose, then the successor accepts."""


@handover.command(name="propose", help="Propose ADDRESS to take over your admin seat; it must accept "
                                        "(`members handover accept`, signed by ADDRESS). Replaces any pending proposal.")
@chain_options
@click.argument("successor", type=ADDRESS)
@user_errors
def handover_propose(chain: ChainOptions, successor: str) -> None:
    with connected(chain) as client:
        proposed = propose_admin_handover(client, successor)
    click.echo(f"{proposed.admin} proposed {proposed.successor} as its successor; "
               "it stays admin until the successor accepts")
    echo_sent(client.sent)


@handover.command(name="accept", help="Take the admin seat proposed to your account; the proposer ceases to be admin.")
@chain_options
@user_errors
def handover_accept(chain: ChainOptions) -> None:
    with connected(chain) as client:
        accepted = accept_admin_handover(client)
    click.echo(f"{accepted.successor} holds the admin role; {accepted.admin} no longer does")
    echo_sent(client.sent)


@handover.command(name="cancel", help="Withdraw the pending admin handover (any admin).")
@chain_options
@user_errors
def handover_cancel(chain: ChainOptions) -> None:
    with connected(chain) as client:
        cancelled = cancel_admin_handover(client)
    click.echo(f"withdrawn: {cancelled.admin} no longer proposes {cancelled.successor}")
    echo_sent(client.sent)


@handover.command(name="show", help="Show the pending admin handover, if any.")
@chain_options
@user_errors
def handover_show(chain: ChainOptions) -> None:
    with connected(chain) as client:
        pending = pending_admin_handover(client)
    click.echo("no admin handover is pending" if pending is None
               else f"{pending.admin} proposes {pending.successor}; waiting for its acceptance")
