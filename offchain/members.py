"""Consortium membership: who holds which role, and changing it in one transaction.

A change names a :class:`~offchain.chain.roles.Role` and an address (and, in a
file, an optional label that only the report shows). Every change is checked
first against the chain (the signer is a consortium admin, no change repeats,
the contract is not paused, the last admin stays); changes that the chain
already reflects are reported and not sent; the rest go out as ``multicall``
transactions that each fit a block (:mod:`offchain.batches`), each landing
whole or not at all. Running the same file again after a failure sends only
what the chain does not reflect yet.

A members file has rows ``role,address[,label]``; :func:`read_members_csv`
refuses the whole file on the first bad row, naming its row and column.

An admin leaves its seat to a successor in two steps (:func:`propose_admin_handover`,
then the successor's :func:`accept_admin_handover`), so a mistyped address
costs nothing until accepted; :func:`cancel_admin_handover` withdraws it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from offchain import inputs
from offchain.batches import Call, ChunkSent, plan_chunks, send_chunks
from offchain.chain.access import ZERO_ADDRESS, AccessClient
from offchain.errors import InvalidInput, MedShareError
from offchain.chain.roles import Role

MEMBER_COLUMNS = ("role", "address", "label")


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
    row: int = 0  # its row in a members file (0: not from a file)


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
        changes.append(MemberChange(role, address, row.cells.get("label", ""), row.number))
    if not changes:
        raise InvalidInput(f"{path}: no rows (expected role,address[,label])")
    return changes


def add_members(client: AccessClient, changes: Sequence[MemberChange], *,
                on_chunk: Callable[[ChunkSent], None] | None = None) -> list[MemberOutcome]:
    """Give each change's role to its address: every change checked first, then as few transactions
    as fit a block (``on_chunk`` hears of each confirmed one)."""
    return _apply(client, changes, grant=True, on_chunk=on_chunk)


def remove_members(client: AccessClient, changes: Sequence[MemberChange], *,
                   on_chunk: Callable[[ChunkSent], None] | None = None) -> list[MemberOutcome]:
    """Take each change's role from its address (at once), checked and chunked as :func:`add_members`."""
    return _apply(client, changes, grant=False, on_chunk=on_chunk)


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


def _apply(client: AccessClient, changes: Sequence[MemberChange], *, grant: bool,
           on_chunk: Callable[[ChunkSent], None] | None = None) -> list[MemberOutcome]:
    """Check every change against the chain, then send those it does not reflect yet, in chunks
    that fit a block (:mod:`offchain.batches`). A change the chain reflects already (a chunk confirmed
    before a failure, when the same file runs again) is reported unchanged and not sent."""
    if not changes:
        raise InvalidInput("name at least one member")
    if len({(change.role, change.address) for change in changes}) != len(changes):
        raise InvalidInput("the same role and address appear twice")
    _require_admin(client)
    held = _holders(client, changes)
    outcomes = [MemberOutcome(change, holds != grant) for change, holds in zip(changes, held)]
    pending = [outcome.change for outcome in outcomes if outcome.changed]
    _preflight(client, pending, grant=grant)
    method = client.contract.grantRole if grant else client.contract.revokeRole
    calls = [Call((change.row or number,), (method.encode_input(change.role.role_id, change.address),))
             for number, change in enumerate(changes, start=1) if change in pending]
    send_chunks(client, plan_chunks(client, calls), on_chunk=on_chunk)
    return outcomes


def _holders(client: AccessClient, changes: Sequence[MemberChange]) -> list[bool]:
    """Whether each change's address holds its role now (one ``holdersOf`` call per role and 256 accounts)."""
    held = [False] * len(changes)
    by_role: dict[Role, list[int]] = {}
    for position, change in enumerate(changes):
        by_role.setdefault(change.role, []).append(position)
    for role, positions in by_role.items():
        for position, holds in zip(positions, client.holders_of([changes[i].address for i in positions], role)):
            held[position] = holds
    return held


def _preflight(client: AccessClient, pending: Sequence[MemberChange], *, grant: bool) -> None:
    """Refuse the whole batch, naming the row, for a change the contract would refuse."""
    def named(change: MemberChange) -> str:
        return f"row {change.row}: " if change.row else ""

    if grant:
        paused = client.is_paused()
        for change in pending:
            if change.address == ZERO_ADDRESS:
                raise InvalidInput(f"{named(change)}the zero address cannot hold a role")
            if paused and change.role is not Role.GUARDIAN:
                raise InvalidInput(f"{named(change)}the contract is paused: only guardians can be appointed "
                                   f"until the guardian resumes it ({change.address} as {change.role.label})")
        return
    admins = client.total_admins()
    for change in pending:
        if change.role is Role.ADMIN:
            admins -= 1
            if admins == 0:
                raise InvalidInput(f"{named(change)}{change.address} is the last consortium admin: removing it "
                                   "would leave every role unmanageable (appoint another admin first)")


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
    client.propose_admin_handover(successor)
    return AdminHandover(client.address, successor)


def accept_admin_handover(client: AccessClient) -> AdminHandover:
    """Take the admin seat proposed to the signer: it becomes admin, the proposer ceases to be."""
    pending = pending_admin_handover(client)
    if pending is None or pending.successor != client.address:
        named = "no handover is pending" if pending is None else f"the pending one names {pending.successor}"
        raise HandoverRefused(f"no admin handover is proposed to {client.address} ({named})")
    if client.is_paused():
        raise HandoverRefused("the contract is paused: a handover is accepted once the guardian resumes it")
    client.accept_admin_handover()
    return pending


def cancel_admin_handover(client: AccessClient) -> AdminHandover:
    """Withdraw the pending handover (any admin may); returns the one withdrawn."""
    _require_admin(client)
    pending = pending_admin_handover(client)
    if pending is None:
        raise HandoverRefused("no admin handover is pending")
    client.cancel_admin_handover()
    return pending


def _require_admin(client: AccessClient) -> None:
    if not client.roles_of(client.address) & Role.ADMIN:
        raise NotAdmin(f"{client.address} is not a consortium admin (only admins change membership)")
