"""Break-glass from the record owner's side: who opened emergency access and still waits for a key.

Opening emergency access lets a reader past the contract's check, but the
record's bytes stay sealed until its owner shares the current version's data
key with them (:meth:`RecordService.share`). This is the owner's to-do list.
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.chain.access import AccessClient


@dataclass(frozen=True)
class PendingKeyShare:
    """A break-glass reader who may read one of our records now but holds no key for its current version."""

    record_id: bytes
    reader: str
    patient: str
    version: int
    until: int

    def to_json(self) -> dict[str, object]:
        return {"record": "0x" + self.record_id.hex(), "reader": self.reader, "patient": self.patient,
                "version": self.version, "until": self.until}


def pending_key_shares(client: AccessClient) -> list[PendingKeyShare]:
    """The live break-glass openings on records ``client``'s account owns whose reader has no key yet,
    newest first: each one is a reader at a bedside waiting for the owner to share the key."""
    now = client.now()
    pending: dict[tuple[bytes, str], PendingKeyShare] = {}
    for opening in reversed(client.emergency_openings()):
        key = (opening.record_id, opening.user)
        if key in pending or opening.expiry <= now:
            continue
        record = client.record(opening.record_id)
        if record.owner != client.address or record.retired:
            continue
        until = client.grant_of(opening.record_id, opening.user).emergency_expiry
        if until <= now or not client.check_access(opening.user, opening.record_id):
            continue  # closed early, or the reader lost the emergency role
        if client.shared_keys(opening.record_id, opening.user, record.version):
            continue
        pending[key] = PendingKeyShare(opening.record_id, opening.user, record.patient, record.version, until)
    return list(pending.values())
