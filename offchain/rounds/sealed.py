"""Round artifacts in the store: safetensors bytes sealed for the readers the study names.

A model, update or aggregate is stored as one file (the CID on chain names it)::

    "MSRA" | format u8 (1) | reader count u16
    | reader count x (reader address, 20 bytes | wrapped key length u16 | wrapped data key)
    | AES-256-GCM stream of the safetensors bytes under the data key

The wrapped keys travel inside the file they open, so one CID on chain names
both and nothing else must be found or kept: each key is the file's random
data key wrapped (:mod:`offchain.crypto.keywrap`, HPKE) for a reader's key
from MedicalAccess's key registry, in that key's suite. The stream and every wrap are bound to the
artifact's place: (chain, registry, study, round, kind, author) hashed into
the 32-byte id the crypto layer binds, and the round as its version, so a
ciphertext cannot be replayed as another round's or another hospital's.

The chain holds the CID and the SHA-256 of the plaintext safetensors bytes.
Every fetch checks both: the store refuses blocks that do not hash to the
CID, the AEAD refuses any modified byte, and the plaintext must hash to the
SHA-256 on chain before anything parses it (with safetensors, never pickle).
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from eth_utils import to_canonical_address, to_checksum_address

from offchain.crypto import (
    MAX_WRAPPED_KEY_SIZE,
    CryptoError,
    KeySuite,
    Keystore,
    decrypt_stream,
    encrypt_stream,
    new_data_key,
    wrap_data_key,
)
from offchain.ipfs import CID, Store, StoreError
from offchain.ipfs.store import open_cat
from offchain.rounds.errors import ArtifactCheckFailed

MAGIC = b"MSRA"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct(">4sBH")
_ENTRY_HEAD = struct.Struct(">20sH")  # reader address, wrapped key length
MAX_READERS = 1024

GENESIS = "genesis"
UPDATE = "update"
AGGREGATE = "aggregate"
EVALUATION = "evaluation"  # a hospital's metrics of a committed model, posted when its study ends


@dataclass(frozen=True)
class Place:
    """Where an artifact belongs: which chain and registry, study, round (0: genesis), kind, and author."""

    chain_id: int
    registry: str
    study: int
    round: int
    kind: str
    author: str

    def binding_id(self) -> bytes:
        label = (f"medshare-round-artifact/1|{self.chain_id}|{self.registry.lower()}|{self.study}|{self.round}|"
                 f"{self.kind}|{self.author.lower()}")
        return hashlib.sha256(label.encode()).digest()

    def describe(self) -> str:
        who = f" from {self.author}" if self.kind in (UPDATE, EVALUATION) else ""
        return f"study {self.study} round {self.round} {self.kind}{who}"


Reader = tuple[bytes, int, KeySuite]  # a published public key, its version and suite


def seal(store: Store, plaintext: bytes, readers: Mapping[str, Reader], place: Place) -> CID:
    """Encrypt ``plaintext`` for ``readers`` (address -> published key), add it, return its CID."""
    if not readers:
        raise ArtifactCheckFailed(f"{place.describe()}: nobody to seal it for")
    if len(readers) > MAX_READERS:
        raise ArtifactCheckFailed(f"{place.describe()}: {len(readers)} readers, at most {MAX_READERS}")
    data_key = new_data_key()
    bound = place.binding_id()
    entries = [_PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(readers))]
    for address, (public_key, key_version, suite) in sorted(readers.items(), key=lambda item: item[0].lower()):
        wrapped = wrap_data_key(data_key, public_key, key_version, bound, place.round, suite)
        entries.append(_ENTRY_HEAD.pack(to_canonical_address(address), len(wrapped)) + wrapped)
    with store.writer(cid_version=1) as sink:
        sink.write(b"".join(entries))
        encrypt_stream(io.BytesIO(plaintext), sink, data_key, bound, place.round)
    return sink.cid


def readers_of(store: Store, cid: CID) -> list[str]:
    """The addresses a sealed artifact carries a key for (without decrypting anything)."""
    with open_cat(store, cid) as source:
        return list(_read_entries(source, cid))


def open_sealed(store: Store, cid: CID, sha256: bytes, keystore: Keystore, reader: str, place: Place) -> bytes:
    """The plaintext of the artifact ``cid``, checked against ``sha256`` (both from the chain)."""
    what = place.describe()
    try:
        with open_cat(store, cid) as source:
            entries = _read_entries(source, cid)
            wrapped = entries.get(to_checksum_address(reader))
            if wrapped is None:
                raise ArtifactCheckFailed(f"{what} ({cid}) carries no key for {reader}")
            bound = place.binding_id()
            data_key = keystore.unwrap_data_key(wrapped, bound, place.round)
            plaintext = io.BytesIO()
            decrypt_stream(source, plaintext, data_key, bound, place.round)
    except CryptoError as error:
        raise ArtifactCheckFailed(f"{what} ({cid}) does not decrypt: {error}") from None
    except StoreError as error:
        raise ArtifactCheckFailed(f"{what} ({cid}) cannot be read from the store: {error}") from None
    data = plaintext.getvalue()
    if hashlib.sha256(data).digest() != bytes(sha256):
        raise ArtifactCheckFailed(f"{what} ({cid}) does not hash to the SHA-256 on chain 0x{bytes(sha256).hex()}")
    return data


def _read_entries(source, cid: CID) -> dict[str, bytes]:
    preamble = source.read(_PREAMBLE.size)
    if len(preamble) != _PREAMBLE.size:
        raise ArtifactCheckFailed(f"{cid} is not a sealed round artifact (too short)")
    magic, version, count = _PREAMBLE.unpack(preamble)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise ArtifactCheckFailed(f"{cid} is not a sealed round artifact of format {FORMAT_VERSION}")
    if not 0 < count <= MAX_READERS:
        raise ArtifactCheckFailed(f"{cid} names {count} readers")
    entries = {}
    for _ in range(count):
        head = source.read(_ENTRY_HEAD.size)
        if len(head) != _ENTRY_HEAD.size:
            raise ArtifactCheckFailed(f"{cid} is truncated in its key table")
        address, length = _ENTRY_HEAD.unpack(head)
        if length > MAX_WRAPPED_KEY_SIZE:
            raise ArtifactCheckFailed(f"{cid} holds a {length}-byte wrapped key, at most {MAX_WRAPPED_KEY_SIZE}")
        wrapped = source.read(length)
        if len(wrapped) != length:
            raise ArtifactCheckFailed(f"{cid} is truncated in its key table")
        entries[to_checksum_address(address)] = wrapped
    return entries
