"""Consortium membership: who holds which role, and changing it in one transaction.

A change names a :class:`~offchain.roles.Role` and an address (and, in a
file, an optional label that only the report shows). Every change is checked
first (the signer is a consortium admin, no change repeats); changes that the
chain already reflects are reported and not sent; the rest go out as one
``multicall`` transaction, so a batch lands whole or not at all.

A members file has rows ``role,address[,label]``; :func:`read_members_csv`
refuses the whole file on the first bad row, naming its row and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from offchain import inputs
from offchain.chain import AccessClient
from offchain.errors import InvalidInput, MedShareError
from offchain.roles import Role

MEMBER_COLUMNS = ("role", "address", "label")


class NotAdmin(MedShareError):
    """The signer does not hold the consortium admin role."""


@dataclass(frozen=True)
class MemberChange:
    """Give (or take) ``role`` to (from) ``address``; ``label`` is for people only."""

    role: Role
    address: str
    label: str = ""


@dataclass(frozen=True)
class MemberOutcome:
    """What happened to one change: ``changed`` False when the chain already reflected it."""

    change: MemberChange
    changed: bool


def read_members_csv(path: Path) -> list[MemberChange]:
    """The changes in a ``role,address[,label]`` file; InvalidInput naming the first bad row and column."""
    changes, seen = [], {}
    for row in inputs.csv_rows(path, MEMBER_COLUMNS, optional=1):
        role = row.check("role", Role.parse)
        address = row.check("address", inputs.address, "address")
        if (role, address) in seen:
            raise row.fail("address", f"{address} as {role.label} repeats row {seen[role, address]}")
        seen[role, address] = row.number
        changes.append(MemberChange(role, address, row.cells.get("label", "")))
    if not changes:
        raise InvalidInput(f"{path}: no rows (expected role,address[,label])")
    return changes


def add_members(client: AccessClient, changes: Sequence[MemberChange]) -> list[MemberOutcome]:
    """Give each change's role to its address, in one transaction."""
    return _apply(client, changes, grant=True)


def remove_members(client: AccessClient, changes: Sequence[MemberChange]) -> list[MemberOutcome]:
    """Take each change's role from its address, in one transaction; it takes effect at once."""
    return _apply(client, changes, grant=False)


def list_members(client: AccessClient, roles: Sequence[Role] = tuple(Role)) -> dict[Role, list[str]]:
    """The members of each role, in the contract's order."""
    return {role: list(client.contract.getRoleMembers(role.role_id)) for role in roles}


def _apply(client: AccessClient, changes: Sequence[MemberChange], *, grant: bool) -> list[MemberOutcome]:
    if not changes:
        raise InvalidInput("name at least one member")
    if len({(change.role, change.address) for change in changes}) != len(changes):
        raise InvalidInput("the same role and address appear twice")
    if not client.roles_of(client.address) & Role.ADMIN:
        raise NotAdmin(f"{client.address} is not a consortium admin (only admins change membership)")
    outcomes = [MemberOutcome(change, bool(client.roles_of(change.address) & change.role) != grant)
                for change in changes]
    method = client.contract.grantRole if grant else client.contract.revokeRole
    calls = [method.encode_input(outcome.change.role.role_id, outcome.change.address)
             for outcome in outcomes if outcome.changed]
    if calls:
        client._multicall(calls)  # one transaction: the batch lands whole or not at all
    return outcomes
