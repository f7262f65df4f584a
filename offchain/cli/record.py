"""``medshare record``: the records workflow (upload, grant, fetch, revoke) from the command line.

    medshare record upload FILE --patient ADDRESS --name NAME
    medshare record grant RECORD GRANTEE... (--days N | --until TIME)   or   --csv FILE
    medshare record share RECORD READER...
    medshare record fetch RECORD -o PATH [--force]
    medshare record revoke RECORD GRANTEE [--rotate]                    or   --csv FILE
    medshare record rotate RECORD
    medshare record ls [--rebuild]

RECORD is a record id (0x + 64 hex digits), which names it on any machine, the
CID of any version of one of this account's records (ids are bound to their
owner), or PATIENT/NAME, which only this hospital's index knows. Every command
takes --network, --rpc, --account and --contract (see ``medshare record upload
--help``). ``ape run grant`` and ``ape run revoke`` are these same commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from tqdm import tqdm

from offchain import inputs
from offchain.chain.access import AccessClient
from offchain.cli.session import (
    ADDRESS,
    ChainOptions,
    chain_options,
    connected,
    echo_chunk,
    echo_sent,
    record_service,
    user_errors,
)
from offchain.batches import batch_journal
from offchain.records import RecordService
from offchain.records.batch import grant_batch, read_batch, revoke_batch
from offchain.records.batch import resolve_record as _resolve
from offchain.settings import Settings

# Files at least this large get a progress bar (on a terminal).
PROGRESS_THRESHOLD = 16 << 20

CSV_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@contextmanager
def _progress(total: int | None, label: str) -> Iterator:
    """A byte progress bar on stderr, on a terminal only; ``total`` None when the size is not known ahead."""
    small = total is not None and total < PROGRESS_THRESHOLD
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=small or None)
    try:
        yield bar.update
    finally:
        bar.close()


def resolve_record(service: RecordService, client: AccessClient, value: str) -> bytes:
    """A record id from ``0x`` + 64 hex digits, a CID of its first version, or PATIENT/NAME."""
    return _resolve(service, value)


def _one_or_csv(record_ref: str | None, users: tuple[str, ...], csv: Path | None, what: str) -> None:
    """Refuse a command line that gives both, or neither, of RECORD USER... and --csv."""
    if csv is not None and (record_ref or users):
        raise click.UsageError(f"give either RECORD {what}... or --csv FILE, not both")
    if csv is None and not (record_ref and users):
        raise click.UsageError(f"give RECORD and at least one {what}, or --csv FILE")


def _once_each(addresses: tuple[str, ...], hint: str) -> None:
    """Refuse an address given twice (each would be sent twice)."""
    repeated = sorted({address for address in addresses if addresses.count(address) > 1})
    if repeated:
        raise click.BadParameter(f"{', '.join(repeated)} given more than once", param_hint=hint)


@click.group()
def record() -> None:
    """Upload, grant, fetch and revoke encrypted records."""


@record.command()
@chain_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--patient", required=True, type=ADDRESS, help="The patient the record belongs to.")
@click.option("--name", required=True, help="The record's name in the index (e.g. MRI_scan).")
@user_errors
def upload(chain: ChainOptions, file: Path, patient: str, name: str) -> None:
    """Encrypt FILE, store it, and register it on chain under PATIENT."""
    with connected(chain) as client:
        service = record_service(client)
        with _progress(file.stat().st_size, "encrypt+add") as progress:
            entry = service.upload(file, patient, name, progress=progress)
    click.echo(f"{entry.patient}/{entry.name}: record {entry.record_id} version {entry.version} cid {entry.cid}")
    echo_sent(client.sent)


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD", required=False)
@click.argument("grantees", metavar="GRANTEE...", nargs=-1, type=ADDRESS)
@click.option("--days", metavar="N", help="Grant for N days from now (a decimal number, e.g. 7 or 0.5).")
@click.option("--until", metavar="TIME", help="Grant until TIME: a Unix time or an ISO date (2027-01-31).")
@click.option("--csv", type=CSV_FILE, help="Grant every row of FILE (columns record,grantee,days) instead.")
@user_errors
def grant(chain: ChainOptions, record_ref: str | None, grantees: tuple[str, ...], days: str | None,
          until: str | None, csv: Path | None) -> None:
    """Let GRANTEES (doctors, or researchers with the patient's consent) read RECORD until an expiry, and
    give them its key in the same transaction."""
    _one_or_csv(record_ref, grantees, csv, "GRANTEE")
    _once_each(grantees, "GRANTEE...")
    if csv is not None and (days or until):
        raise click.UsageError("with --csv, each row gives its own days")
    if csv is None and (days is None) == (until is None):
        raise click.UsageError("give exactly one of --days and --until")
    with connected(chain) as client:
        expiry = None if csv is not None else inputs.expiry(days=days, until=until, now=client.now())
        service = record_service(client)
        if csv is not None:
            rows = read_batch(service, csv, grant=True)
            journal = batch_journal("grants", csv, client, Settings.from_env().home)
            sent = grant_batch(service, rows, journal=journal, on_chunk=echo_chunk)
            for row in rows:
                if row not in sent:
                    click.echo(f"row {row.number}: granted {row.grantee} record 0x{row.record_id.hex()} before "
                               "(a chunk confirmed by an earlier run of this file)")
                    continue
                click.echo(f"row {row.number}: granted {row.grantee} record 0x{row.record_id.hex()} "
                           f"until {inputs.show_time(row.expiry)}")
            echo_sent(client.sent)
            return
        record_id = resolve_record(service, client, record_ref)
        info = service.grant(record_id, list(grantees), expiry)
    for grantee in grantees:
        click.echo(f"granted {grantee} record 0x{record_id.hex()} version {info.version} "
                   f"until {inputs.show_time(expiry)}")
    echo_sent(client.sent)


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@click.argument("readers", nargs=-1, required=True, type=ADDRESS)
@user_errors
def share(chain: ChainOptions, record_ref: str, readers: tuple[str, ...]) -> None:
    """Give RECORD's current key to READERS who may read it already (e.g. break-glass access)."""
    _once_each(readers, "READERS...")
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        info = service.share(record_id, list(readers))
    for reader in readers:
        click.echo(f"shared the key of record 0x{record_id.hex()} version {info.version} with {reader}")
    echo_sent(client.sent)


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the decrypted record: a new file, or an existing regular file with --force; "
                   "never a symbolic link, a device or other special file.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is an existing regular file.")
@user_errors
def fetch(chain: ChainOptions, record_ref: str, output: Path, force: bool) -> None:
    """Read RECORD into OUTPUT: checked, logged on chain, fetched, decrypted and verified.

    Everything checkable first (OUTPUT writable, your access, your key, the record's blocks present and intact,
    the whole record decrypted and authenticated), so a read that would fail, or is interrupted, is not logged.
    """
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        with _progress(None, "fetch+decrypt") as progress:
            fetched = service.fetch(record_id, output, overwrite=force, progress=progress)
    click.echo(f"record 0x{record_id.hex()} version {fetched.version}: {fetched.size} bytes to {fetched.path}")


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD", required=False)
@click.argument("grantee", required=False, type=ADDRESS)
@click.option("--rotate", is_flag=True,
              help="Also re-encrypt under a new key shared only with those who keep access (owner only).")
@click.option("--csv", type=CSV_FILE, help="Revoke every row of FILE (columns record,grantee[,days]) instead.")
@user_errors
def revoke(chain: ChainOptions, record_ref: str | None, grantee: str | None, rotate: bool, csv: Path | None) -> None:
    """End GRANTEE's access to RECORD at once."""
    _one_or_csv(record_ref, (grantee,) if grantee else (), csv, "GRANTEE")
    with connected(chain) as client:
        service = record_service(client)
        if csv is not None:
            rows = read_batch(service, csv, grant=False)
            journal = batch_journal("revokes", csv, client, Settings.from_env().home)
            sent = revoke_batch(service, rows, rotate=rotate, journal=journal, on_chunk=echo_chunk)
            for row in rows:
                if row not in sent:
                    click.echo(f"row {row.number}: revoked {row.grantee} on record 0x{row.record_id.hex()} before "
                               "(a chunk confirmed by an earlier run of this file)")
                    continue
                click.echo(f"row {row.number}: revoked {row.grantee} on record 0x{row.record_id.hex()}")
            echo_sent(client.sent)
            return
        record_id = resolve_record(service, client, record_ref)
        with _progress(None, "re-encrypt") as progress:
            info = service.revoke(record_id, grantee, rotate=rotate, progress=progress)
    rotated = f"; now version {info.version} at {info.cid}" if rotate else ""
    click.echo(f"revoked {grantee} on record 0x{record_id.hex()}{rotated}")
    echo_sent(client.sent)


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@user_errors
def rotate(chain: ChainOptions, record_ref: str) -> None:
    """Re-encrypt RECORD under a new key given only to those who may read it now (owner only).

    Takes the current key away from anyone whose access already ended (a grant voided by a lost
    role, or expired), whom `revoke` cannot name."""
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        with _progress(None, "re-encrypt") as progress:
            info = service.rotate(record_id, progress=progress)
    click.echo(f"rotated record 0x{record_id.hex()}: now version {info.version} at {info.cid}")
    echo_sent(client.sent)


@record.command(name="ls")
@chain_options
@click.option("--rebuild", is_flag=True, help="Rebuild the index from the chain's events first.")
@user_errors
def list_records(chain: ChainOptions, rebuild: bool) -> None:
    """List this hospital's records: PATIENT/NAME, record id, version, CID."""
    with connected(chain) as client:
        service = record_service(client)
        if rebuild:
            service.index.rebuild(client.record_versions(client.address))
        entries = service.index.entries()
    for entry in entries:
        click.echo(f"{entry.patient}/{entry.name}  {entry.record_id}  v{entry.version}  {entry.cid}")
    if not entries:
        click.echo(f"no records in {service.index.path}" + ("" if rebuild else " (try --rebuild)"))

