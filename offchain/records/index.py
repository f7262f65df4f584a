"""A hospital's local index of its records: patient -> record name -> current CID.

It keeps the layout (``/medical_data/patient_A/MRI_scan_encrypted.cid``)
as one JSON file per chain and contract, under ``$MEDSHARE_HOME/records/``.
Names are local labels and never go on chain (a name such as "hiv-test" next
to a patient's address on a public chain would itself leak): :meth:`rebuild`
restores every record, version and CID from the chain's events, keeps the
names this index already knew, and names the others ``record-<id prefix>``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from offchain.chain.access import RecordVersion
from offchain.errors import MedShareError
from offchain.ipfs.cid import CID

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class RecordIndexError(MedShareError, ValueError):
    """A bad record name, or a name already used for that patient."""


def check_name(name: str) -> str:
    """``name`` if it is a valid record name (letters, digits, ``._-``; 1 to 128 characters)."""
    if not _NAME.fullmatch(name):
        raise RecordIndexError(
            f"record name {name!r} must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class IndexEntry:
    """One record in the index."""

    patient: str
    name: str
    record_id: str  # 0x-prefixed hex
    version: int
    cid: str

    @property
    def record_bytes(self) -> bytes:
        return bytes.fromhex(self.record_id[2:])


class RecordIndex:
    """The index file for one chain and contract."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_contract(cls, home: Path, chain_id: int, contract: str) -> RecordIndex:
        return cls(Path(home) / "records" / f"{chain_id}-{contract.lower()}.json")

    def entries(self) -> list[IndexEntry]:
        """Every record, by patient then name."""
        layout = self._load()
        return [
            IndexEntry(patient, name, **fields)
            for patient in sorted(layout)
            for name, fields in sorted(layout[patient].items())
        ]

    def get(self, patient: str, name: str) -> IndexEntry | None:
        fields = self._load().get(patient, {}).get(name)
        return IndexEntry(patient, name, **fields) if fields else None

    def find(self, record_id: bytes) -> IndexEntry | None:
        """The entry of the record with this id, if indexed."""
        wanted = "0x" + record_id.hex()
        return next((entry for entry in self.entries() if entry.record_id == wanted), None)

    def add(self, entry: IndexEntry) -> None:
        """Index a new record; refuses a name the patient already has."""
        check_name(entry.name)
        layout = self._load()
        if entry.name in layout.get(entry.patient, {}):
            raise RecordIndexError(f"patient {entry.patient} already has a record named {entry.name!r}")
        self._put(layout, entry)

    def update(self, entry: IndexEntry) -> None:
        """Record a new version of an indexed record."""
        self._put(self._load(), entry)

    def rebuild(self, versions: list[RecordVersion]) -> list[IndexEntry]:
        """Replace the index with the records in ``versions`` (from the chain), keeping known names."""
        known = {entry.record_id: entry.name for entry in self.entries()}
        latest: dict[bytes, RecordVersion] = {}
        for version in versions:
            current = latest.get(version.record_id)
            if current is None or version.version > current.version:
                latest[version.record_id] = version
        patients = {v.record_id: v.patient for v in versions if v.version == 1}
        layout: dict[str, dict[str, dict]] = {}
        for record_id, version in latest.items():
            hex_id = "0x" + record_id.hex()
            name = known.get(hex_id, f"record-{record_id.hex()[:12]}")
            entry = IndexEntry(patients.get(record_id, version.patient), name, hex_id, version.version, str(version.cid))
            layout.setdefault(entry.patient, {})[entry.name] = _fields(entry)
        self._save(layout)
        return self.entries()

    def _put(self, layout: dict, entry: IndexEntry) -> None:
        layout.setdefault(entry.patient, {})[entry.name] = _fields(entry)
        self._save(layout)

    def _load(self) -> dict[str, dict[str, dict]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as error:
            raise RecordIndexError(
                f"record index {self.path} is not valid JSON ({error}); rebuild it with `medshare record ls --rebuild`"
            ) from None

    def _save(self, layout: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(layout, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.path)


def _fields(entry: IndexEntry) -> dict:
    fields = asdict(entry)
    del fields["patient"], fields["name"]
    CID.parse(fields["cid"])  # never index something that is not a CID
    return fields
