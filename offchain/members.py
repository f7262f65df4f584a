"""Consortium membership: who holds which role, and changing it in one transaction.

A change names a :class:`~offchain.roles.Role` and an address (and, in a
file, an optional label that only the report shows). Every change is checked
first (the signer is a consortium admin, no change repeats); changes that the
chain already reflects are reported and not sent; the rest go out as one
``multicall`` transaction, so a batch lands whole or not at all.

A members file has rows ``role,address[,label]``; :func:`read_members_csv`
refuses the whole file on the first bad row, naming its row and column.

An admin leaves its seat to a successor in two steps (:func:`propose_admin_handover`,
then the successor's :func:`accept_admin_handover`), so a mistyped address
costs nothing until accepted; :func:`cancel_admin_handover` withdraws it.
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


ZERO_ADDRESS = "0x" + "00" * 20


class NotAdmin(MedShareError):
    """The signer does not hold the consortium admin role."""


class HandoverRefused(MedShareError):
    """An admin handover cannot be proposed, accepted or cancelled as asked (the message says why)."""


@dataclass(frozen=True)
class AdminHandover:
    """A pending handover: ``admin`` leaves its seat to ``successor`` once ``successor`` accepts."""

    admin: str
    successor: str


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
    """The members of each role, in order of the grant that made each one a member: replayed from
    the role's RoleGranted and RoleRevoked events in the event store (the contract does not
    enumerate members: that would cost every enrolment two storage slots)."""
    client.sync_events()
    listed = {}
    for role in roles:
        members: dict[str, None] = {}
        for log in client.events.query_any(["RoleGranted", "RoleRevoked"], role=role.role_id):
            if log.event_name == "RoleGranted":
                members.setdefault(log.account)
            else:
                members.pop(log.account, None)
        listed[role] = list(members)
    return listed


def _apply(client: AccessClient, changes: Sequence[MemberChange], *, grant: bool) -> list[MemberOutcome]:
    if not changes:
        raise InvalidInput("name at least one member")
    if len({(change.role, change.address) for change in changes}) != len(changes):
        raise InvalidInput("the same role and address appear twice")
    _require_admin(client)
    outcomes = [MemberOutcome(change, bool(client.roles_of(change.address) & change.role) != grant)
                for change in changes]
    method = client.contract.grantRole if grant else client.contract.revokeRole
    calls = [method.encode_input(outcome.change.role.role_id, outcome.change.address)
             for outcome in outcomes if outcome.changed]
    if calls:
        client._multicall(calls)  # one transaction: the batch lands whole or not at all
    return outcomes


def pending_admin_handover(client: AccessClient) -> AdminHandover | None:
    """The handover waiting for its successor's acceptance, if any."""
    admin, successor = client.contract.pendingAdminHandover()
    return None if successor == ZERO_ADDRESS else AdminHandover(admin, successor)


def propose_admin_handover(client: AccessClient, successor: str) -> AdminHandover:
    """Propose ``successor`` to take the signer's admin seat (replacing any pending proposal).

    Nothing changes hands until ``successor`` accepts; the signer stays admin meanwhile."""
    successor = inputs.address(successor, "successor")
    _require_admin(client)
    if successor == ZERO_ADDRESS:
        raise InvalidInput("successor: the zero address holds no key (to withdraw a proposal, cancel it)")
    if client.roles_of(successor) & Role.ADMIN:
        raise HandoverRefused(f"{successor} is a consortium admin already: there is no seat to hand it")
    client._send(client.contract.proposeAdminHandover, successor)
    return AdminHandover(client.address, successor)


def accept_admin_handover(client: AccessClient) -> AdminHandover:
    """Take the admin seat proposed to the signer: it becomes admin, the proposer ceases to be."""
    pending = pending_admin_handover(client)
    if pending is None or pending.successor != client.address:
        named = "no handover is pending" if pending is None else f"the pending one names {pending.successor}"
        raise HandoverRefused(f"no admin handover is proposed to {client.address} ({named})")
    if client.is_paused():
        raise HandoverRefused("the contract is paused: a handover is accepted once the guardian resumes it")
    client._send(client.contract.acceptAdminHandover)
    return pending


def cancel_admin_handover(client: AccessClient) -> AdminHandover:
    """Withdraw the pending handover (any admin may); returns the one withdrawn."""
    _require_admin(client)
    pending = pending_admin_handover(client)
    if pending is None:
        raise HandoverRefused("no admin handover is pending")
    client._send(client.contract.proposeAdminHandover, ZERO_ADDRESS)
    return pending


def _require_admin(client: AccessClient) -> None:
    if not client.roles_of(client.address) & Role.ADMIN:
        raise NotAdmin(f"{client.address} is not a consortium admin (only admins change membership)")
