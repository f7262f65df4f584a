"""``medshare record``: the seed's workflow from the command line.

    medshare record upload FILE --patient ADDRESS --name NAME
    medshare record grant RECORD GRANTEE... (--days N | --until UNIX_TIME)
    medshare record share RECORD READER...
    medshare record fetch RECORD -o PATH [--force]
    medshare record revoke RECORD GRANTEE [--rotate]
    medshare record rotate RECORD
    medshare record ls [--rebuild]

RECORD is a record id (0x + 64 hex digits), the CID of any version of one of
this account's records (ids are bound to their owner), or PATIENT/NAME from
this hospital's index. Every command takes
--network, --rpc, --account and --contract (see ``medshare record upload --help``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from eth_utils import is_address, to_checksum_address
from tqdm import tqdm

from offchain.chain import AccessClient
from offchain.cli.session import ChainOptions, chain_options, connected, record_service, user_errors
from offchain.ipfs.cid import CID, InvalidCID
from offchain.records import RecordError, RecordService

# Files at least this large get a progress bar (on a terminal).
PROGRESS_THRESHOLD = 16 << 20


class AddressParam(click.ParamType):
    """An Ethereum address, checksummed."""

    name = "ADDRESS"

    def convert(self, value, param, ctx) -> str:
        if not is_address(value):
            self.fail(f"{value!r} is not an Ethereum address", param, ctx)
        return to_checksum_address(value)


ADDRESS = AddressParam()


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
    """A record id from ``0x`` + 64 hex digits, a CID of one of the signer's records, or PATIENT/NAME."""
    if value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    if "/" in value:
        patient, _, name = value.partition("/")
        if is_address(patient):
            entry = service.index.get(to_checksum_address(patient), name)
            if entry is None:
                raise RecordError(f"no record {name!r} for patient {patient} in {service.index.path}")
            return entry.record_bytes
    try:
        return client.record_id_of(CID.parse(value))
    except InvalidCID as error:
        raise click.BadParameter(
            f"{value!r} is not a record id (0x + 64 hex digits), a CID or PATIENT/NAME ({error})", param_hint="RECORD"
        ) from None


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


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@click.argument("grantees", nargs=-1, required=True, type=ADDRESS)
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="Grant for this many days from now.")
@click.option("--until", type=int, help="Grant until this Unix time.")
@user_errors
def grant(chain: ChainOptions, record_ref: str, grantees: tuple[str, ...], days: float | None,
          until: int | None) -> None:
    """Let GRANTEES (doctors or researchers) read RECORD until an expiry, and give them its key."""
    if (days is None) == (until is None):
        raise click.UsageError("give exactly one of --days and --until")
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        expiry = until if until is not None else client.now() + int(days * 86400)
        info = service.grant(record_id, list(grantees), expiry)
    for grantee in grantees:
        click.echo(f"granted {grantee} record 0x{record_id.hex()} version {info.version} until {expiry}")


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@click.argument("readers", nargs=-1, required=True, type=ADDRESS)
@user_errors
def share(chain: ChainOptions, record_ref: str, readers: tuple[str, ...]) -> None:
    """Give RECORD's current key to READERS who may read it already (e.g. break-glass access)."""
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        info = service.share(record_id, list(readers))
    for reader in readers:
        click.echo(f"shared the key of record 0x{record_id.hex()} version {info.version} with {reader}")


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the decrypted record (an existing file only with --force).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@user_errors
def fetch(chain: ChainOptions, record_ref: str, output: Path, force: bool) -> None:
    """Read RECORD into OUTPUT: checked, logged on chain, fetched, decrypted and verified.

    Everything checkable first (OUTPUT writable, your access, your key, the record's blocks present and intact),
    so a read that would fail is not logged.
    """
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        with _progress(None, "fetch+decrypt") as progress:
            fetched = service.fetch(record_id, output, overwrite=force, progress=progress)
    click.echo(f"record 0x{record_id.hex()} version {fetched.version}: {fetched.size} bytes to {fetched.path}")


@record.command()
@chain_options
@click.argument("record_ref", metavar="RECORD")
@click.argument("grantee", type=ADDRESS)
@click.option("--rotate", is_flag=True,
              help="Also re-encrypt under a new key shared only with those who keep access (owner only).")
@user_errors
def revoke(chain: ChainOptions, record_ref: str, grantee: str, rotate: bool) -> None:
    """End GRANTEE's access to RECORD at once."""
    with connected(chain) as client:
        service = record_service(client)
        record_id = resolve_record(service, client, record_ref)
        with _progress(None, "re-encrypt") as progress:
            info = service.revoke(record_id, grantee, rotate=rotate, progress=progress)
    rotated = f"; now version {info.version} at {info.cid}" if rotate else ""
    click.echo(f"revoked {grantee} on record 0x{record_id.hex()}{rotated}")


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

