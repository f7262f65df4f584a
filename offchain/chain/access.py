"""The access contract seen from Python: typed reads, one-transaction steps, refusals as errors.

:class:`AccessClient` wraps a deployed MedicalAccess and the account that
signs. Every step that changes policy and publishes keys goes out as one
``multicall`` transaction, so a refusal anywhere leaves nothing half done. A
revert surfaces as :class:`~offchain.chain.contract.ChainRefusal` carrying
the contract's custom error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_canonical_address

from offchain.chain.contract import ContractClient
from offchain.crypto import KeySuite, KeyWrapError
from offchain.ipfs.cid import CID
from offchain.chain.roles import Role


@dataclass(frozen=True)
class RecordInfo:
    """A record as the contract holds it now."""

    record_id: bytes
    owner: str
    patient: str
    version: int
    retired: bool
    cid: CID


@dataclass(frozen=True)
class PublishedKey:
    """A member's current encryption key as the key registry holds it, its bytes checked
    against the on-chain commitment. ``version`` 0 (and no suite, no bytes): none published."""

    member: str
    public_key: bytes
    suite: KeySuite | None
    version: int

    @property
    def published(self) -> bool:
        return self.version > 0


@dataclass(frozen=True)
class KeyCommitment:
    """What the key registry stores of a member's current key: the keccak256 of its bytes, its suite's
    KEM id and its version (all 0: none published). Cheap to read for many members at once."""

    key_hash: bytes
    kem_id: int
    version: int


@dataclass(frozen=True)
class Grant:
    """A (record, user) pair's grant expiry, the patient's consent expiry and the break-glass expiry
    (0 when none). Access as a researcher ends at the earlier of ``expiry`` and ``consent_expiry``."""

    expiry: int
    consent_expiry: int
    emergency_expiry: int

    @property
    def consent(self) -> bool:
        """Whether the patient consented (perhaps expired since; compare ``consent_expiry`` with now)."""
        return self.consent_expiry > 0


def record_id_for(owner: str, cid: CID) -> bytes:
    """The id ``owner`` registers ``cid`` as: keccak256(owner address || sha2-256 digest of the CID).

    Binding the id to its owner means nobody who sees the CID first can claim it."""
    return keccak(to_canonical_address(owner) + cid.digest)


@dataclass(frozen=True)
class SignedGrant:
    """A grant a patient signed (EIP-712 ``Grant``) for anyone to relay: the contract checks the signature."""

    record_id: bytes
    grantee: str
    expiry: int
    nonce: int
    issued_block: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class RecordVersion:
    """One version of a record, from the chain's events."""

    record_id: bytes
    owner: str
    patient: str
    version: int
    cid: CID


@dataclass(frozen=True)
class AuditEntry:
    """One event of a record's audit trail: ``event`` (the contract's name), the account it concerns
    (grantee, researcher, break-glass user or reader), its other fields, and where it is on chain."""

    event: str
    account: str
    fields: dict[str, Any]
    block: int
    tx_hash: str


@dataclass(frozen=True)
class EmergencyOpening:
    """One break-glass opening: ``user`` may read ``patient``'s record until ``expiry`` (unless closed)."""

    record_id: bytes
    user: str
    patient: str
    expiry: int
    block: int


ZERO_ADDRESS = "0x" + "00" * 20
HOLDERS_PER_CALL = 256
"""The most accounts MedicalAccess's ``holdersOf`` answers for in one call (one bit each of a word)."""

AUDIT_EVENTS: dict[str, str] = {
    "AccessGranted": "grantee", "AccessRevoked": "grantee", "ConsentSet": "researcher",
    "EmergencyAccessOpened": "user", "EmergencyAccessClosed": "user", "AccessLogged": "reader",
}
"""The events that make a record's audit trail, and the field naming the account each concerns."""


class AccessClient(ContractClient):
    """A MedicalAccess contract and the account that signs for this client."""

    # Reads -----------------------------------------------------------------

    def record(self, record_id: bytes) -> RecordInfo:
        """The record now; ChainRefusal(UnknownRecord) if there is none."""
        owner, patient, version, retired = self._call("recordOf", record_id)
        cid, _ = self.current_cid(record_id)
        return RecordInfo(bytes(record_id), owner, patient, version, retired, cid)

    def current_cid(self, record_id: bytes) -> tuple[CID, int]:
        """The CID of the record's current version, and that version (one call)."""
        cid, version = self._call("currentCid", record_id)
        return CID.from_bytes(bytes(cid)), int(version)

    def record_id_of(self, cid: CID, owner: str | None = None) -> bytes:
        """The record ``cid`` belongs to under ``owner`` (default: the signer): the record a rotation
        moved to it, else the id it registers (or registered) as."""
        (record_id,) = self._call("recordIdOf", owner or self.address, bytes(cid))
        return bytes(record_id)

    def check_access(self, user: str, record_id: bytes) -> bool:
        return bool(self.contract.checkAccess(user, record_id))

    def grant_of(self, record_id: bytes, user: str) -> Grant:
        expiry, consent_expiry, emergency = self.contract.grantOf(record_id, user)
        return Grant(int(expiry), int(consent_expiry), int(emergency))

    def roles_of(self, member: str) -> Role:
        return Role(int(self.contract.rolesOf(member)))

    def holders_of(self, accounts: Sequence[str], role: Role) -> list[bool]:
        """Whether each of ``accounts`` holds ``role`` now: one call per :data:`HOLDERS_PER_CALL` accounts."""
        held: list[bool] = []
        for start in range(0, len(accounts), HOLDERS_PER_CALL):
            part = list(accounts[start:start + HOLDERS_PER_CALL])
            (bits,) = self._call("holdersOf", part, int(role))
            held += [bool(bits >> offset & 1) for offset in range(len(part))]
        return held

    def total_admins(self) -> int:
        """How many accounts hold the consortium admin role."""
        return int(self._call("totalAdmins")[0])

    def is_paused(self) -> bool:
        return bool(self.contract.paused())

    def encryption_key(self, member: str) -> PublishedKey:
        """``member``'s current published key, its suite and version (version 0 when none was published).

        Storage holds a commitment (keccak256, suite, version); the bytes come from the version's
        EncryptionKeyPublished event and must match it, else KeyWrapError: a reader's key that does
        not verify is never wrapped to.
        """
        key_hash, kem_id, version = self._call("encryptionKeyOf", member)
        if version == 0:
            return PublishedKey(member, b"", None, 0)
        suite = KeySuite.from_kem_id(int(kem_id))
        logs = self.logs("EncryptionKeyPublished", member=member, version=version)
        key = bytes(logs[-1].key) if logs else b""
        if not logs or keccak(key) != bytes(key_hash) or logs[-1].suite != kem_id:
            raise KeyWrapError(
                f"the key bytes published for {member} (key version {version}) do not match the key "
                "registry's commitment; refusing to use them"
            )
        return PublishedKey(member, key, suite, int(version))

    def encryption_keys_of(self, members: Sequence[str]) -> list[KeyCommitment]:
        """Each member's current key commitment (storage only, no event read), in one call."""
        method = self.contract.encryptionKeyOf
        (results,) = self._call("multicall", [method.encode_input(member) for member in members])
        types = [output.canonical_type for output in method.abis[0].outputs]
        return [KeyCommitment(bytes(key_hash), int(kem_id), int(version))
                for key_hash, kem_id, version in (abi_decode(types, bytes(result)) for result in results)]

    def encryption_key_version(self, member: str) -> int:
        """The version of ``member``'s current key (0: none published), from storage alone."""
        return int(self._call("encryptionKeyOf", member)[2])

    def shared_keys(self, record_id: bytes, reader: str, version: int) -> list[bytes]:
        """Every wrapped data key shared with ``reader`` for that record version, newest first.

        The newest is not always the right one (a party may publish a wrong key): callers keep the
        first that unwraps and matches the ciphertext's key commitment."""
        logs = self.logs("DataKeyShared", record=record_id, reader=reader, version=version)
        return [bytes(log.wrappedKey) for log in reversed(logs)]

    def granted_users(self, record_id: bytes) -> list[str]:
        """Everyone ever granted access to the record, in order of first grant."""
        users = dict.fromkeys(log.grantee for log in self.logs("AccessGranted", record=record_id))
        return list(users)

    def record_versions(self, owner: str) -> list[RecordVersion]:
        """Every version of every record ``owner`` registered, oldest first (for rebuilding an index)."""
        with self.one_read():
            return self._record_versions(owner)

    def _record_versions(self, owner: str) -> list[RecordVersion]:
        self.sync_events()
        parse = CID.from_bytes
        registered = self.events.values("RecordRegistered", ("record", "patient", "cid"), owner=owner)
        versions = [RecordVersion(record_id, owner, patient, 1, parse(cid)) for record_id, patient, cid in registered]
        patients = {record_id: patient for record_id, patient, _ in registered}
        for record_id, version, cid in self.events.values("RecordRotated", ("record", "version", "cid"), owner=owner):
            versions.append(RecordVersion(record_id, owner, patients.get(record_id, ""), version, parse(cid)))
        return versions

    def audit_trail(self, record_id: bytes) -> list[AuditEntry]:
        """Who was granted, refused consent or revoked, broke the glass and read the record, in chain order."""
        self.sync_events()
        logs = self.events.query_any(list(AUDIT_EVENTS), record=record_id)
        return [
            AuditEntry(log.event_name, log.event_arguments[AUDIT_EVENTS[log.event_name]],
                       {name: value for name, value in log.event_arguments.items()
                        if name not in ("record", AUDIT_EVENTS[log.event_name])},
                       log.block_number, str(log.transaction_hash))
            for log in logs
        ]

    def emergency_openings(self) -> list[EmergencyOpening]:
        """Every break-glass opening on any record, oldest first (openings are rare: one event query)."""
        return [
            EmergencyOpening(bytes(log.record), log.user, log.patient, int(log.expiry), log.block_number)
            for log in self.logs("EmergencyAccessOpened")
        ]

    # Transactions ----------------------------------------------------------

    def publish_encryption_key(self, public_key: bytes, suite: KeySuite = KeySuite.X25519) -> int:
        """Publish the signer's public key of ``suite``; returns its version."""
        self._send(self.contract.publishEncryptionKey, suite.kem_id, public_key)
        return self.encryption_key(self.address).version

    def register_record(self, cid: CID, patient: str, shares: Sequence[tuple[str, bytes]]) -> bytes:
        """Register ``cid`` as a new record for ``patient`` and share its key, in one transaction;
        returns the record id."""
        record_id = record_id_for(self.address, cid)
        self.multicall(
            [self.contract.registerRecord.encode_input(bytes(cid), patient)]
            + self._share_calls(record_id, 1, shares)
        )
        return record_id

    def grant(self, record_id: bytes, grantees: Sequence[str], expiry: int, version: int,
              shares: Sequence[tuple[str, bytes]]) -> None:
        """Grant ``grantees`` access until ``expiry`` and share the current version's key with them."""
        self.multicall(self.grant_calls(record_id, grantees, expiry, version, shares))

    def grant_calls(self, record_id: bytes, grantees: Sequence[str], expiry: int, version: int,
                    shares: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """The encoded calls of :meth:`grant` (for one multicall)."""
        grant = (
            self.contract.grantAccess.encode_input(record_id, grantees[0], expiry)
            if len(grantees) == 1
            else self.contract.grantAccessBatch.encode_input(record_id, list(grantees), expiry)
        )
        return [grant] + self._share_calls(record_id, version, shares)

    def share_keys(self, record_id: bytes, version: int, shares: Sequence[tuple[str, bytes]]) -> None:
        """Publish the version's data key wrapped for readers who may read already."""
        readers, keys = zip(*shares)
        self._send(self.contract.shareDataKeys, record_id, version, list(readers), list(keys))

    def revoke(self, record_id: bytes, grantee: str) -> None:
        """End ``grantee``'s grant on the record."""
        self._send(self.contract.revokeAccess, record_id, grantee)

    def rotate(self, record_id: bytes, cid: CID, version: int, shares: Sequence[tuple[str, bytes]]) -> None:
        """Move the record to ``cid`` (its ``version``) and share the new key, in one transaction.

        A revocation goes out on its own before (:meth:`revoke`): it must never depend on a rotation
        succeeding."""
        self.multicall([self.contract.rotateRecord.encode_input(record_id, bytes(cid))]
                        + self._share_calls(record_id, version, shares))

    def set_consent(self, record_id: bytes, researcher: str, expiry: int) -> None:
        """As the record's patient, consent until ``expiry`` for ``researcher`` (0 withdraws)."""
        self._send(self.contract.setConsent, record_id, researcher, expiry)

    def open_emergency_access(self, record_id: bytes, reason_hash: bytes, duration: int) -> int:
        """Break the glass on the record for ``duration`` seconds; returns when the access closes."""
        receipt = self._send(self.contract.openEmergencyAccess, record_id, reason_hash, duration)
        return int(self._event_args(receipt, "EmergencyAccessOpened")["expiry"])

    def grant_by_signature(self, signed: SignedGrant, version: int, shares: Sequence[tuple[str, bytes]]) -> None:
        """Relay the patient's EIP-712 grant and share the version's key with the grantee, in one transaction."""
        grant = self.contract.grantAccessBySig.encode_input(
            signed.record_id, signed.grantee, signed.expiry, signed.nonce, signed.issued_block, signed.deadline,
            signed.signature,
        )
        self.multicall([grant] + self._share_calls(signed.record_id, version, shares))

    def propose_admin_handover(self, successor: str) -> None:
        """Propose ``successor`` to take the signer's admin seat (replacing any pending proposal)."""
        self._send(self.contract.proposeAdminHandover, successor)

    def cancel_admin_handover(self) -> None:
        """Withdraw the pending admin handover (any admin may)."""
        self._send(self.contract.proposeAdminHandover, ZERO_ADDRESS)

    def accept_admin_handover(self) -> None:
        """Take the admin seat proposed to the signer."""
        self._send(self.contract.acceptAdminHandover)

    def log_access(self, record_id: bytes) -> int:
        """Record the signer's read on chain (reverts AccessDenied without access); returns the version read."""
        receipt = self._send(self.contract.logAccess, record_id)
        version, _ = self._event_data(receipt, "AccessLogged")
        return int(version)

    def _share_calls(self, record_id: bytes, version: int, shares: Sequence[tuple[str, bytes]]) -> list[bytes]:
        if not shares:
            return []
        readers, keys = zip(*shares)
        return [self.contract.shareDataKeys.encode_input(record_id, version, list(readers), list(keys))]
