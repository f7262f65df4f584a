"""Grant one or more doctors or researchers access to a record until an expiry.

    ape run grant RECORD GRANTEE... (--days N | --until UNIX_TIME)
        [--network polygon:amoy:node] [--account ALIAS] [--contract ADDRESS]

RECORD is the record id (0x + 64 hex digits) or the CID of any version of a record
the account owns (record ids are bound to their owner). The account
must be the record's data owner or its patient (a patient's grant carries the patient's consent;
a researcher granted by the owner also needs the patient's consent to read). Several grantees go
in one batch transaction. The contract comes from .medshare/deployments.json (see deploy).
"""

import click
from ape import chain
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain import Role
from scripts._admin import (
    contract_option,
    load_access,
    parse_address,
    parse_record,
    require_owner_or_patient,
    signer,
    transact_or_fail,
)


def grant(access, sender, record: bytes, grantees: list[str], expiry: int):
    """Check everything the contract would refuse, then grant; returns the receipt."""
    require_owner_or_patient(access, record, sender)
    if expiry <= chain.pending_timestamp:
        raise click.ClickException(f"expiry {expiry} is not in the future")
    for grantee in grantees:
        if not access.rolesOf(grantee) & (Role.DOCTOR | Role.RESEARCHER):
            raise click.ClickException(f"{grantee} holds neither the doctor nor the researcher role")
    if len(grantees) == 1:
        return transact_or_fail(access, lambda: access.grantAccess(record, grantees[0], expiry, sender=sender))
    return transact_or_fail(access, lambda: access.grantAccessBatch(record, grantees, expiry, sender=sender))


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@account_option(prompt=False)
@contract_option
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="Grant for this many days from now.")
@click.option("--until", "until", type=int, help="Grant until this Unix time.")
@click.argument("record")
@click.argument("grantees", nargs=-1, required=True)
def cli(account, contract_address, days, until, record, grantees):
    if (days is None) == (until is None):
        raise click.UsageError("give exactly one of --days and --until")
    sender = signer(account)
    access = load_access(contract_address)
    record_id = parse_record(access, record, sender.address)
    expiry = until if until is not None else chain.pending_timestamp + int(days * 24 * 3600)
    addresses = [parse_address(g, "grantee") for g in grantees]
    receipt = grant(access, sender, record_id, addresses, expiry)
    for address in addresses:
        click.echo(f"granted {address} access to record 0x{record_id.hex()} until {expiry} (tx {receipt.txn_hash})")
