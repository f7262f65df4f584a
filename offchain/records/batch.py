"""Naming records, and granting or revoking many at once from a CSV file.

A record is named by its id (``0x`` + 64 hex digits), by any CID of its first
version (both work on any machine: a doctor elsewhere names a record this
way), or by ``PATIENT/NAME``, which only the owner's local index knows.

A batch file has rows ``record,grantee,days`` (``days`` optional when
revoking, so a grant file also undoes itself). Every row is parsed and
resolved before anything is sent; rows naming the same record and expiry go
out as one grant (one transaction, key shares included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from offchain import inputs
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


class BatchStopped(RecordError):
    """A batch stopped at a refused step; the message says which rows were done before it."""

    def __init__(self, failed: list[BatchRow], done: list[BatchRow], error: Exception) -> None:
        self.failed, self.done = failed, done
        rows = ", ".join(str(row.number) for row in failed)
        before = (f"rows {', '.join(str(row.number) for row in done)} were done before it"
                  if done else "nothing was sent")
        super().__init__(f"row {rows}: {error} ({before}; later rows were not sent)")


def grant_batch(service: RecordService, rows: list[BatchRow]) -> None:
    """Grant every row, one transaction per (record, expiry), in the file's order."""
    groups: dict[tuple[bytes, int | None], list[BatchRow]] = {}
    for row in rows:
        groups.setdefault((row.record_id, row.expiry), []).append(row)
    done: list[BatchRow] = []
    for (record_id, expiry), group in groups.items():
        try:
            service.grant(record_id, [row.grantee for row in group], expiry)
        except MedShareError as error:
            raise BatchStopped(group, done, error) from None
        done += group


def revoke_batch(service: RecordService, rows: list[BatchRow], *, rotate: bool = False) -> None:
    """Revoke every row, in the file's order."""
    done: list[BatchRow] = []
    for row in rows:
        try:
            service.revoke(row.record_id, row.grantee, rotate=rotate)
        except MedShareError as error:
            raise BatchStopped([row], done, error) from None
        done.append(row)
