"""Revoke a grantee's access to a record at once.

    ape run revoke RECORD GRANTEE [--network polygon:amoy:node] [--account ALIAS] [--contract ADDRESS]

RECORD is the record id (0x + 64 hex digits) or the CID of any version of a record
the account owns (record ids are bound to their owner). The account
must be the record's data owner or its patient. Consent attached to the grant goes with it. The
contract comes from .medshare/deployments.json (see deploy).
"""

import click
from ape.cli import ConnectedProviderCommand, account_option

from scripts._admin import (
    contract_option,
    load_access,
    parse_address,
    parse_record,
    require_owner_or_patient,
    signer,
    transact_or_fail,
)


def revoke(access, sender, record: bytes, grantee: str):
    """Check everything the contract would refuse, then revoke; returns the receipt."""
    require_owner_or_patient(access, record, sender)
    expiry, _, _ = access.grantOf(record, grantee)
    if expiry == 0:
        raise click.ClickException(f"{grantee} holds no grant on record 0x{record.hex()}")
    return transact_or_fail(access, lambda: access.revokeAccess(record, grantee, sender=sender))


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@account_option(prompt=False)
@contract_option
@click.argument("record")
@click.argument("grantee")
def cli(account, contract_address, record, grantee):
    sender = signer(account)
    access = load_access(contract_address)
    record_id = parse_record(access, record, sender.address)
    address = parse_address(grantee, "grantee")
    receipt = revoke(access, sender, record_id, address)
    click.echo(f"revoked {address} on record 0x{record_id.hex()} (tx {receipt.txn_hash})")
