"""The records workflow on real parts: upload, grant, fetch, revoke (with key rotation).

A record version is a file encrypted under its own random data key
(:mod:`offchain.crypto`) and added to a store (:mod:`offchain.ipfs`); its CID
is registered in MedicalAccess under the patient. The data key reaches each
reader wrapped (HPKE) for the key the reader published in the contract's key
registry, as a ``DataKeyShared`` event beside the grant; the owner shares it
with itself too, so it can grant and rotate later from the chain alone.

Stream binding: segments are bound to (record id, version). A record's id is
derived from its owner and the digest of its first CID, so version 1 cannot
name its record before its bytes exist; it binds the all-zero id, and is tied
to its record by the id committing to the hash of the ciphertext itself. Later
versions bind the record id.

Key shares are checked, never trusted: of the data keys shared with a member
for a version, newest first, the first that unwraps and matches the key
commitment in the ciphertext's header is used.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from eth_utils import keccak

from offchain.chain.access import AccessClient, RecordInfo, Role, SignedGrant, record_id_for
from offchain.chain.contract import ChainRefusal
from offchain.crypto import (
    CryptoError,
    Keystore,
    decrypt_stream,
    encrypt_stream,
    new_data_key,
    verify_data_key,
    wrap_data_key,
)
from offchain.crypto.atomic import fsync_directory
from offchain.errors import MedShareError
from offchain.interrupts import deferred_interrupts
from offchain.ipfs.cid import CID
from offchain.ipfs.store import Store, open_cat
from offchain.records.index import IndexEntry, RecordIndex, check_name

ZERO_RECORD_ID = bytes(32)

Progress = Callable[[int], None]


class RecordError(MedShareError):
    """A record operation cannot go ahead; the message says why and what to do."""


class AccessRefused(RecordError):
    """The contract's policy does not let the caller do this (e.g. read without a live grant)."""


def stream_record_id(record_id: bytes, version: int) -> bytes:
    """The record id a version's stream is bound to (see the module's note on version 1)."""
    return ZERO_RECORD_ID if version == 1 else record_id


@dataclass(frozen=True)
class Fetched:
    """A record read: which version, how many plaintext bytes, where they went."""

    record_id: bytes
    version: int
    size: int
    path: Path


class RecordService:
    """One member's view of the workflow: its chain client, store, keystore and index."""

    def __init__(self, client: AccessClient, store: Store, keystore: Keystore | None, index: RecordIndex) -> None:
        self.client = client
        self.store = store
        self.keystore = keystore
        self.index = index

    # Upload -----------------------------------------------------------------

    def upload(self, path: Path, patient: str, name: str, *, progress: Progress | None = None) -> IndexEntry:
        """Encrypt ``path``, store it, and register it on chain as ``patient``'s record ``name``."""
        check_name(name)
        if self.index.get(patient, name) is not None:
            raise RecordError(f"patient {patient} already has a record named {name!r} (see `medshare record ls`)")
        self._require_role(self.client.address, Role.DATA_OWNER, "the data-owner role (a hospital)")
        self._require_role(patient, Role.PATIENT, "the patient role", who=f"patient {patient}")
        self._require_own_key_published()
        data_key = new_data_key()
        with open(_readable(path), "rb") as source:
            cid = self._encrypt_into_store(source, data_key, ZERO_RECORD_ID, 1, progress)
        record_id = record_id_for(self.client.address, cid)
        readers = [self.client.address] + ([patient] if self._published_key(patient) else [])
        shares = self._wrap(data_key, record_id, 1, readers)
        entry = IndexEntry(patient, name, "0x" + record_id.hex(), 1, str(cid))
        with deferred_interrupts():  # registered on chain and named in the index, or neither
            try:
                self.client.register_record(cid, patient, shares)
            except ChainRefusal:
                self._forget(cid)
                raise
            self.index.add(entry)
        return entry

    # Grant ------------------------------------------------------------------

    def grant(self, record_id: bytes, grantees: Sequence[str], expiry: int) -> RecordInfo:
        """Let ``grantees`` read the record until ``expiry`` and give them its current key."""
        record, calls = self.prepare_grant(record_id, grantees, expiry)
        self.client.multicall(calls)
        return record

    def prepare_grant(self, record_id: bytes, grantees: Sequence[str], expiry: int) -> tuple[RecordInfo, list[bytes]]:
        """Check a grant as :meth:`grant` would send it, and return its encoded calls (the grant and
        the key shares, for one multicall) without sending anything."""
        if not grantees:
            raise RecordError("name at least one grantee")
        record = self._live_record(record_id)
        self._require_owner_or_patient(record)
        if expiry <= self.client.now():
            raise RecordError(f"expiry {expiry} is not in the future (chain time {self.client.now()})")
        for grantee in grantees:
            self._require_role(grantee, Role.DOCTOR | Role.RESEARCHER, "the doctor or researcher role",
                               who=f"grantee {grantee}")
            if (self.client.address != record.patient and not self.client.roles_of(grantee) & Role.DOCTOR
                    and self.client.grant_of(record_id, grantee).consent_expiry <= self.client.now()):
                raise AccessRefused(
                    f"researcher {grantee} needs the patient's consent to read record 0x{record_id.hex()}: the patient "
                    "grants them (consent included) or gives consent first"
                )
            if not self._published_key(grantee):
                raise RecordError(
                    f"grantee {grantee} has published no encryption key, so no data key can be sealed for it; "
                    "they must run `medshare keys publish` first"
                )
        data_key = self._own_data_key(record)
        shares = self._wrap(data_key, record_id, record.version, grantees)
        return record, self.client.grant_calls(record_id, grantees, expiry, record.version, shares)

    def share(self, record_id: bytes, readers: Sequence[str]) -> RecordInfo:
        """Give the current key to ``readers`` who may read already but hold no key for this version,
        e.g. a break-glass reader, or a grantee whose key was published after the grant."""
        if not readers:
            raise RecordError("name at least one reader")
        record = self._live_record(record_id)
        self._require_owner_or_patient(record)
        for reader in readers:
            if reader not in (record.owner, record.patient) and not self.client.check_access(reader, record_id):
                raise AccessRefused(f"{reader} may not read record 0x{record_id.hex()} now; grant access first")
            if not self._published_key(reader):
                raise RecordError(f"{reader} has published no encryption key; they must run `medshare keys publish`")
        shares = self._wrap(self._own_data_key(record), record_id, record.version, readers)
        self.client.share_keys(record_id, record.version, shares)
        return record

    # Fetch ------------------------------------------------------------------

    def fetch(self, record_id: bytes, out: Path, *, overwrite: bool = False,
              progress: Progress | None = None) -> Fetched:
        """Read the record into ``out``: checked, decrypted and verified, logged on chain, published.

        Everything that can fail locally or be checked without the chain's log
        comes first, so a read that fails, or is interrupted, leaves no
        ``AccessLogged`` entry: ``out`` can be written (its folder exists and
        takes files; it is not a directory, a symbolic link, a device or any
        other non-regular file; an existing file only with ``overwrite``), the
        reader may read now (``checkAccess``, or the record's owner or patient
        reading it back, whose reads the contract logs too), a data key was
        shared with them and unwraps, every block of the version is in the
        store and matches its hash, and the whole version decrypts and
        authenticates into a private temporary file beside ``out``. Only then,
        as one step that Ctrl-C and SIGTERM wait for, is the read logged
        (``logAccess``) and the file published at ``out``, which so never
        holds an unauthenticated byte. Two fetches to one ``out`` take turns
        at that step: the second sees the first's file.

        A symbolic link at ``out`` is refused, with or without ``overwrite``:
        a decrypted record is never written through a link to elsewhere, nor
        does it replace the link.
        """
        out = Path(out)
        _check_output(out, overwrite)
        cid, version = self._current_cid(record_id)
        if not (self.client.check_access(self.client.address, record_id) or self._reads_own_record(record_id)):
            raise AccessRefused(self._why_no_access(record_id))
        keystore = self._require_keystore()
        data_key = self._data_key(keystore, record_id, version, cid)
        self.store.verify(cid)
        fd, part = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as file:
                with open_cat(self.store, cid) as source:
                    size = decrypt_stream(source, file, data_key, stream_record_id(record_id, version), version,
                                          progress=progress)
                file.flush()
                os.fsync(file.fileno())
            with _folder_lock(out.parent), deferred_interrupts():
                _check_output(out, overwrite)  # again: another fetch may have written it meanwhile
                if self._logged_version(record_id) != version:
                    raise RecordError(f"record 0x{record_id.hex()} moved to a new version during the read; "
                                      "fetch again")
                if overwrite:
                    os.replace(part, out)
                else:
                    os.link(part, out)
                fsync_directory(out.parent)
        finally:
            Path(part).unlink(missing_ok=True)
        return Fetched(record_id, version, size, out)

    def _logged_version(self, record_id: bytes) -> int:
        try:
            return self.client.log_access(record_id)
        except ChainRefusal as refusal:
            if refusal.error == "AccessDenied":
                raise AccessRefused(self._why_no_access(record_id)) from None
            raise

    # Revoke -----------------------------------------------------------------

    def revoke(self, record_id: bytes, grantee: str, *, rotate: bool = False,
               progress: Progress | None = None) -> RecordInfo:
        """End ``grantee``'s access; with ``rotate``, also re-encrypt under a new key that they never get.

        The revocation is its own transaction, sent first: it never depends on the rotation
        succeeding. With ``rotate``, a grantee without a live grant (e.g. voided by a lost role) is
        simply rotated out."""
        record = self._live_record(record_id)
        has_grant = self.check_revoke(record, grantee, rotate=rotate)
        if has_grant:
            self.client.revoke(record_id, grantee)
        if not rotate:
            return self._live_record(record_id)
        return self.rotate(record_id, progress=progress)

    def check_revoke(self, record: RecordInfo, grantee: str, *, rotate: bool = False) -> bool:
        """Check a revocation as :meth:`revoke` would send it; returns whether ``grantee`` holds a
        grant to revoke (without one, only a rotation has something to do)."""
        record_id = record.record_id
        has_grant = self.client.grant_of(record_id, grantee).expiry != 0
        if not has_grant and not rotate:
            raise RecordError(
                f"{grantee} holds no grant on record 0x{record_id.hex()}; to take away a key they may still hold, "
                "rotate the record (`medshare record rotate`)"
            )
        if rotate:
            self._require_rotating_owner(record)
        else:
            self._require_owner_or_patient(record)
        return has_grant

    def rotate(self, record_id: bytes, *, progress: Progress | None = None) -> RecordInfo:
        """Re-encrypt the record under a new key and give it only to whoever may read now (the owner,
        the patient, live readers): anyone whose access ended, by revocation, expiry or a lost role,
        loses the current key too. The record's owner only."""
        record = self._live_record(record_id)
        self._require_rotating_owner(record)
        old_key = self._data_key(self._require_keystore(), record_id, record.version, record.cid)
        new_key, version = new_data_key(), record.version + 1
        bound_id = stream_record_id(record_id, record.version)
        with open_cat(self.store, record.cid) as source, \
                _DecryptingReader(source, old_key, bound_id, record.version) as plaintext:
            cid = self._encrypt_into_store(plaintext, new_key, record_id, version, progress)
        keep = [user for user in self.client.granted_users(record_id) if self.client.check_access(user, record_id)]
        readers = [self.client.address, *([record.patient] if self._published_key(record.patient) else []),
                   *(user for user in keep if self._published_key(user))]
        try:
            self.client.rotate(record_id, cid, version, self._wrap(new_key, record_id, version, readers))
        except ChainRefusal:
            self._forget(cid)
            raise
        self._forget(record.cid)
        indexed = self.index.find(record_id)
        if indexed is not None:
            self.index.update(IndexEntry(indexed.patient, indexed.name, indexed.record_id, version, str(cid)))
        return self._live_record(record_id)

    # Patients and emergencies ------------------------------------------------

    def set_consent(self, record_id: bytes, researcher: str, expiry: int) -> None:
        """As the record's patient, consent until ``expiry`` for ``researcher`` to read it once granted
        (``expiry`` 0 withdraws consent, which works even while the contract is paused)."""
        record = self._live_record(record_id)
        if self.client.address != record.patient:
            raise AccessRefused(f"only the record's patient {record.patient} can set consent on 0x{record_id.hex()}")
        if expiry:
            self._require_role(researcher, Role.RESEARCHER, "the researcher role", who=f"{researcher}")
            if expiry <= self.client.now():
                raise RecordError(f"consent expiry {expiry} is not in the future (chain time {self.client.now()})")
        self.client.set_consent(record_id, researcher, expiry)

    def open_emergency_access(self, record_id: bytes, reason: str, duration: int) -> int:
        """Break the glass for ``duration`` seconds, with a written reason whose hash is logged on chain.

        Returns when the access closes. The record's owner must still share the
        current key (``share``) before the reader can decrypt.
        """
        if not reason.strip():
            raise RecordError("break-glass access needs a written reason")
        self._live_record(record_id)
        self._require_role(self.client.address, Role.EMERGENCY, "the emergency role")
        return self.client.open_emergency_access(record_id, keccak(text=reason), duration)

    def relay_signed_grant(self, signed: SignedGrant) -> RecordInfo:
        """As the record's owner, relay a grant its patient signed (EIP-712) and share the key with the grantee.

        The patient pays no gas; the owner's transaction carries the grant and
        the grantee's key share together, so the grantee can read at once.
        """
        record_id, grantee = signed.record_id, signed.grantee
        record = self._live_record(record_id)
        if self.client.address != record.owner:
            raise AccessRefused(f"only the record's owner {record.owner} holds the key to share with {grantee}")
        self._require_role(grantee, Role.DOCTOR | Role.RESEARCHER, "the doctor or researcher role",
                           who=f"grantee {grantee}")
        if not self._published_key(grantee):
            raise RecordError(f"grantee {grantee} has published no encryption key; they must run `medshare keys publish`")
        shares = self._wrap(self._own_data_key(record), record_id, record.version, [grantee])
        self.client.grant_by_signature(signed, record.version, shares)
        return record

    # Helpers ----------------------------------------------------------------

    def _encrypt_into_store(self, source: BinaryIO, data_key: bytes, bound_id: bytes, version: int,
                            progress: Progress | None) -> CID:
        with self.store.writer(cid_version=1) as sink:
            encrypt_stream(source, sink, data_key, bound_id, version, progress=progress)
        return sink.cid

    def _forget(self, cid: CID) -> None:
        """Drop our pin of a version nobody should fetch from us (failed registration, rotated away)."""
        try:
            self.store.unpin(cid)
        except Exception:  # noqa: BLE001 - the pin may already be gone; the chain state is what matters
            pass

    def _wrap(self, data_key: bytes, record_id: bytes, version: int, readers: Sequence[str]) -> list[tuple[str, bytes]]:
        shares = []
        for reader in dict.fromkeys(readers):
            key = self.client.encryption_key(reader)
            if not key.published:
                raise RecordError(f"{reader} has published no encryption key (`medshare keys publish`)")
            shares.append((reader, wrap_data_key(data_key, key.public_key, key.version, record_id, version, key.suite)))
        return shares

    def _own_data_key(self, record: RecordInfo) -> bytes:
        return self._data_key(self._require_keystore(), record.record_id, record.version, record.cid)

    def _data_key(self, keystore: Keystore, record_id: bytes, version: int, cid: CID) -> bytes:
        """The data key of the version, from the keys shared with us: newest first, the first that
        unwraps and matches the ciphertext's key commitment (a party may have published a wrong one)."""
        shared = self.client.shared_keys(record_id, self.client.address, version)
        for wrapped in shared:
            try:
                data_key = keystore.unwrap_data_key(wrapped, record_id, version)
            except CryptoError:
                continue
            with open_cat(self.store, cid) as source:
                if verify_data_key(source, data_key, stream_record_id(record_id, version), version):
                    return data_key
        if not shared:
            raise RecordError(
                f"no data key for version {version} of record 0x{record_id.hex()} was shared with "
                f"{self.client.address} (each version's key goes to its owner, to its patient if the patient had "
                "published a key by then, and to its readers); ask the record's owner to grant or share again"
            )
        raise RecordError(
            f"none of the {len(shared)} data key(s) shared with {self.client.address} for version {version} of record "
            f"0x{record_id.hex()} opens it (wrong key published, or your keystore lacks the key they were sealed "
            "for); ask the record's owner to share again"
        )

    def _current_cid(self, record_id: bytes) -> tuple[CID, int]:
        with self._known_record(record_id):
            return self.client.current_cid(record_id)

    def _live_record(self, record_id: bytes) -> RecordInfo:
        with self._known_record(record_id):
            record = self.client.record(record_id)
        if record.retired:
            raise AccessRefused(f"record 0x{record_id.hex()} is retired")
        return record

    @staticmethod
    @contextmanager
    def _known_record(record_id: bytes) -> Iterator[None]:
        try:
            yield
        except ChainRefusal as refusal:
            if refusal.error == "UnknownRecord":
                raise RecordError(f"no record 0x{record_id.hex()} is registered on this chain") from None
            raise

    def _reads_own_record(self, record_id: bytes) -> bool:
        """Whether the signer is the live record's owner (a data owner still) or its patient (a patient
        still): they read it back with the key share every version gives them."""
        record = self._live_record(record_id)
        me = self.client.address
        if me not in (record.owner, record.patient):
            return False
        roles = self.client.roles_of(me)
        return bool(roles & Role.DATA_OWNER) if me == record.owner else bool(roles & Role.PATIENT)

    def _require_owner_or_patient(self, record: RecordInfo) -> None:
        if self.client.address not in (record.owner, record.patient):
            raise AccessRefused(
                f"{self.client.address} is neither the owner ({record.owner}) nor the patient ({record.patient}) "
                f"of record 0x{record.record_id.hex()}"
            )

    def _require_rotating_owner(self, record: RecordInfo) -> None:
        if record.owner != self.client.address:
            raise AccessRefused(
                f"only the record's owner {record.owner} can rotate record 0x{record.record_id.hex()}; "
                "revoke without --rotate"
            )

    def _require_role(self, account: str, bits: Role, role: str, *, who: str | None = None) -> None:
        if not self.client.roles_of(account) & bits:
            raise AccessRefused(f"{who or account} does not hold {role}")

    def _require_keystore(self) -> Keystore:
        if self.keystore is None:
            raise RecordError("this needs your keystore: create it and publish your key with `medshare keys publish`")
        return self.keystore

    def _published_key(self, member: str) -> bool:
        return self.client.encryption_key_version(member) > 0

    def _require_own_key_published(self) -> None:
        keystore = self._require_keystore()
        published = self.client.encryption_key(self.client.address)
        version = published.version
        if version != keystore.current_version or published.public_key != keystore.public_key():
            raise RecordError(
                f"the key published for {self.client.address} (version {version}) is not your keystore's current "
                f"key (version {keystore.current_version}); run `medshare keys publish`"
            )

    def _why_no_access(self, record_id: bytes) -> str:
        user, record_hex = self.client.address, f"0x{record_id.hex()}"
        if self.client.is_paused():
            return f"the contract is paused: no record can be read now ({record_hex})"
        record = self._live_record(record_id)  # an unknown or retired record raises with its own message
        if user in (record.owner, record.patient):
            role = "data-owner" if user == record.owner else "patient"
            return f"{user} no longer holds the {role} role, which reading its own record {record_hex} back needs"
        grant = self.client.grant_of(record_id, user)
        if grant.expiry == 0:
            return f"{user} has no grant on record {record_hex} (never granted, revoked, or voided by a lost role)"
        if grant.expiry <= self.client.now():
            return f"{user}'s grant on record {record_hex} expired at {grant.expiry}"
        roles = self.client.roles_of(user)
        if not roles & (Role.DOCTOR | Role.RESEARCHER):
            return f"{user} no longer holds a reading role (doctor or researcher)"
        if not roles & Role.DOCTOR and grant.consent_expiry <= self.client.now():
            return f"researcher {user} lacks the patient's live consent for record {record_hex}"
        return f"{user} may not read record {record_hex} now"


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output path the decrypted record could not be written to, before anything is read or logged."""
    folder = out.parent
    if out.is_symlink():
        raise RecordError(f"output path {out} is a symbolic link; name the file itself (a record is never "
                          "written through a link, nor replaces one)")
    if out.is_dir():
        raise RecordError(f"output path {out} is a directory; name a file")
    if not folder.is_dir():
        raise RecordError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordError(f"output folder {folder} is not writable")
    try:
        mode = out.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise RecordError(f"output path {out} is not a regular file (a device, a pipe or a socket); name a file")
    if not overwrite:
        raise RecordError(f"{out} already exists; use --force to replace it")


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (fetches writing into it take turns)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _readable(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path} is not a readable file")
    return path


class _DecryptingReader:
    """A readable stream of a record version's plaintext, decrypted on a thread through a pipe.

    Lets rotation re-encrypt without the plaintext touching disk. If
    decryption fails, ``read`` raises instead of returning a short stream, so
    a truncated plaintext is never re-encrypted as if it were whole.
    """

    def __init__(self, source: BinaryIO, data_key: bytes, bound_id: bytes, version: int) -> None:
        read_fd, write_fd = os.pipe()
        self._pipe = os.fdopen(read_fd, "rb")
        writer = os.fdopen(write_fd, "wb")

        def decrypt() -> int:
            with writer:
                return decrypt_stream(source, writer, data_key, bound_id, version)

        pool = ThreadPoolExecutor(max_workers=1)
        self._decrypted = pool.submit(decrypt)
        pool.shutdown(wait=False)

    def __enter__(self) -> _DecryptingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Closing our end stops a decryptor still writing (it gets a broken pipe) if we bail out early.
        self._pipe.close()

    def read(self, size: int = -1) -> bytes:
        data = self._pipe.read(size)
        if not data:
            self._decrypted.result()
        return data

    def readinto(self, buffer) -> int:
        count = self._pipe.readinto(buffer)
        if not count:
            self._decrypted.result()
        return count
