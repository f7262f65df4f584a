"""Add, remove and list consortium members by role.

    ape run participants add ROLE ADDRESS     [--network ...] [--account ALIAS] [--contract ADDRESS]
    ape run participants remove ROLE ADDRESS  [...]
    ape run participants list [ROLE]          [...]

ROLE is one of admin, guardian, data-owner, doctor, researcher, patient, emergency, coordinator,
participant. Adding and removing need the consortium admin role; removal takes effect at once
(a removed doctor's grants are void for good). The contract comes from .medshare/deployments.json
(see deploy).
"""

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._admin import ROLES, contract_option, load_access, parse_address, signer, transact_or_fail

role_argument = click.argument("role", type=click.Choice(list(ROLES)))


def _role_id(access, role: str) -> bytes:
    return getattr(access, ROLES[role])()


def _require_admin(access, sender) -> None:
    if not access.hasRole(access.DEFAULT_ADMIN_ROLE(), sender):
        raise click.ClickException(f"{sender.address} is not a consortium admin")


def add_member(access, sender, role: str, member: str):
    """Give ``member`` the role; returns the receipt."""
    _require_admin(access, sender)
    if access.hasRole(_role_id(access, role), member):
        raise click.ClickException(f"{member} already holds the {role} role")
    return transact_or_fail(access, lambda: access.grantRole(_role_id(access, role), member, sender=sender))


def remove_member(access, sender, role: str, member: str):
    """Take the role from ``member``; returns the receipt."""
    _require_admin(access, sender)
    if not access.hasRole(_role_id(access, role), member):
        raise click.ClickException(f"{member} does not hold the {role} role")
    return transact_or_fail(access, lambda: access.revokeRole(_role_id(access, role), member, sender=sender))


def list_members(access, roles: list[str]) -> dict[str, list[str]]:
    """The members of each role, in the contract's order."""
    return {role: list(access.getRoleMembers(_role_id(access, role))) for role in roles}


@click.group(help=__doc__)
def cli():
    pass


def _membership_command(name: str, help: str, change, outcome: str):
    """A subcommand ``name ROLE ADDRESS`` that applies ``change`` and reports ``outcome``."""

    @cli.command(name=name, cls=ConnectedProviderCommand, help=help)
    @account_option(prompt=False)
    @contract_option
    @role_argument
    @click.argument("address")
    def command(account, contract_address, role, address):
        member = parse_address(address)
        receipt = change(load_access(contract_address), signer(account), role, member)
        click.echo(f"{member} {outcome} the {role} role (tx {receipt.txn_hash})")

    return command


add = _membership_command("add", "Give ADDRESS the ROLE (consortium admins only).", add_member, "now holds")
remove = _membership_command(
    "remove", "Take the ROLE from ADDRESS, at once (consortium admins only).", remove_member, "no longer holds"
)


@cli.command(name="list", cls=ConnectedProviderCommand)
@contract_option
@click.argument("role", required=False, type=click.Choice(list(ROLES)))
def list_(contract_address, role):
    """List the members of ROLE (default: of every role)."""
    for name, members in list_members(load_access(contract_address), [role] if role else list(ROLES)).items():
        click.echo(f"{name}: {', '.join(members) if members else '-'}")
