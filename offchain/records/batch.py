"""Naming records, and granting or revoking many at once from a CSV file.

A record is named by its id (``0x`` + 64 hex digits), by any CID of its first
version (both work on any machine: a doctor elsewhere names a record this
way), or by ``PATIENT/NAME``, which only the owner's local index knows.

A batch file has rows ``record,grantee,days`` (``days`` optional when
revoking, so a grant file also undoes itself). Every row is parsed, resolved
and checked against the chain before anything is sent: one bad row refuses
the whole file, naming it. The rows then go out in transactions that fit a
block (:mod:`offchain.batches`), each grant with its key share; a journal
under ``$MEDSHARE_HOME/batches`` lets the same file, run again after a
failure, resume after the last confirmed chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from offchain import inputs
from offchain.batches import BatchJournal, Call, ChunkSent, plan_chunks, send_chunks
from offchain.errors import InvalidInput, MedShareError
from offchain.ipfs.cid import CID, InvalidCID
from offchain.records.service import RecordError, RecordService

GRANT_COLUMNS = ("record", "grantee", "days")


def resolve_record(service: RecordService, value: str) -> bytes:
    """A record id from ``0x`` + 64 hex digits, the CID of any version of one of the signer's records, or PATIENT/NAME."""
    text = value.strip()
    if text.startswith("0x") and len(text) == 66:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    if "/" in text:
        patient, _, name = text.partition("/")
        patient = inputs.address(patient, "record's patient")
        entry = service.index.get(patient, name)
        if entry is None:
            raise RecordError(
                f"no record {name!r} for patient {patient} in {service.index.path}: PATIENT/NAME is known only "
                "to the owner's index; elsewhere name the record by its id or CID"
            )
        return entry.record_bytes
    try:
        cid = CID.parse(text)
    except InvalidCID as error:
        raise InvalidInput(
            f"record: {value!r} is not a record id (0x + 64 hex digits), a CID or PATIENT/NAME ({error})"
        ) from None
    return service.client.record_id_of(cid)


@dataclass(frozen=True)
class BatchRow:
    """One row of a batch file, resolved: the file's row number, the record, the grantee, the expiry (grants)."""

    number: int
    record_id: bytes
    grantee: str
    expiry: int | None


def read_batch(service: RecordService, path: Path, *, grant: bool) -> list[BatchRow]:
    """Every row of ``path``, checked and resolved; InvalidInput naming the first bad row and column."""
    now = service.client.now()
    rows, seen = [], {}
    for row in inputs.csv_rows(path, GRANT_COLUMNS, optional=0 if grant else 1):
        grantee = row.check("grantee", inputs.address, "grantee")
        try:
            record_id = resolve_record(service, row.cells["record"])
        except (InvalidInput, RecordError) as error:
            raise row.fail("record", str(error)) from None
        expiry = None
        if grant or row.cells.get("days"):
            expiry = row.check("days", lambda days: inputs.expiry(days=days, until=None, now=now))
        key = (record_id, grantee)
        if key in seen:
            raise row.fail("grantee", f"{grantee} on this record repeats row {seen[key]}")
        seen[key] = row.number
        rows.append(BatchRow(row.number, record_id, grantee, expiry))
    if not rows:
        raise InvalidInput(f"{path}: no rows (expected {','.join(GRANT_COLUMNS)})")
    return rows


def grant_batch(service: RecordService, rows: list[BatchRow], *, journal: BatchJournal | None = None,
                on_chunk: Callable[[ChunkSent], None] | None = None) -> list[BatchRow]:
    """Grant every row: each checked against the chain first (the record live and the signer its
    owner or patient, the grantee a doctor or a consenting researcher with a published key), the
    whole file refused at the first row that fails, naming it; then the grants and their key shares
    go out in chunks that fit a block. Returns the rows sent (those a ``journal`` of an earlier run
    of the same file holds as done are not sent again)."""
    todo = _not_done(rows, journal)
    calls = []
    for row in todo:
        try:
            _, data = service.prepare_grant(row.record_id, [row.grantee], row.expiry)
        except MedShareError as error:
            raise _refused(row, error) from None
        calls.append(Call((row.number,), tuple(data)))
    send_chunks(service.client, plan_chunks(service.client, calls), journal=journal, on_chunk=on_chunk)
    return todo


def revoke_batch(service: RecordService, rows: list[BatchRow], *, rotate: bool = False,
                 journal: BatchJournal | None = None,
                 on_chunk: Callable[[ChunkSent], None] | None = None) -> list[BatchRow]:
    """Revoke every row, each checked first (the record live, the signer its owner or patient, or
    its owner to rotate, and a grant to revoke), in chunks that fit a block; with ``rotate``, each
    record named is then re-encrypted once for those who keep access. Returns the rows sent."""
    todo = _not_done(rows, journal)
    calls = []
    for row in todo:
        try:
            record = service.client.record(row.record_id)
            if record.retired:
                raise RecordError(f"record 0x{row.record_id.hex()} is retired")
            has_grant = service.check_revoke(record, row.grantee, rotate=rotate)
        except MedShareError as error:
            raise _refused(row, error) from None
        if has_grant:
            calls.append(Call((row.number,), (service.client.contract.revokeAccess.encode_input(
                row.record_id, row.grantee),)))
    send_chunks(service.client, plan_chunks(service.client, calls), journal=journal if not rotate else None,
                on_chunk=on_chunk)
    if rotate:
        for record_id in dict.fromkeys(row.record_id for row in todo):
            service.rotate(record_id)
        if journal is not None:
            journal.finish()
    return todo


def _not_done(rows: list[BatchRow], journal: BatchJournal | None) -> list[BatchRow]:
    return [row for row in rows if journal is None or row.number not in journal.done]


def _refused(row: BatchRow, error: Exception) -> InvalidInput:
    return InvalidInput(f"row {row.number}: {error} (nothing was sent: fix the row and run the file again)")
