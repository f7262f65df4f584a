"""Content identifiers (CIDs): the binary and text forms Kubo uses.

Text: CIDv0 is the bare base58btc multihash (``Qm...``); CIDv1 is multibase
base32 lower case (``b...``), Kubo's default. Parsing also accepts base58btc
(``z``) and base16 (``f``/``F``) and upper-case base32 (``B``) CIDv1.
Binary (what the access contract stores): CIDv0 is the multihash; CIDv1 is
``0x01 || varint(codec) || multihash``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

import base58

from offchain.ipfs.varint import decode_varint, encode_varint

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12


class InvalidCID(ValueError):
    """A string or byte string is not a well-formed CID."""


def _split_multihash(multihash: bytes) -> tuple[int, bytes]:
    if len(multihash) > 2 and multihash[0] < 0x80 and multihash[1] < 0x80:  # one-byte code and length: most
        if len(multihash) - 2 != multihash[1]:
            raise InvalidCID(f"multihash declares a {multihash[1]}-byte digest but holds {len(multihash) - 2} bytes")
        return multihash[0], multihash[2:]
    try:
        code, offset = decode_varint(multihash)
        length, offset = decode_varint(multihash, offset)
    except ValueError as error:
        raise InvalidCID(f"malformed multihash: {error}") from None
    digest = multihash[offset:]
    if len(digest) != length:
        raise InvalidCID(f"multihash declares a {length}-byte digest but holds {len(digest)} bytes")
    return code, digest


@dataclass(frozen=True)
class CID:
    """A CID: version (0 or 1), content codec (e.g. dag-pb 0x70, raw 0x55) and multihash."""

    version: int
    codec: int
    multihash: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCID(f"unsupported CID version {self.version}")
        code, digest = _split_multihash(self.multihash)
        if self.version == 0 and (self.codec != DAG_PB or code != SHA2_256 or len(digest) != 32):
            raise InvalidCID("a CIDv0 is always a dag-pb node named by a 32-byte sha2-256 multihash")

    @classmethod
    def from_digest(cls, version: int, codec: int, sha256_digest: bytes) -> CID:
        """The CID of a block whose sha2-256 digest is ``sha256_digest``."""
        return cls(version, codec, bytes((SHA2_256, len(sha256_digest))) + sha256_digest)

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """Parse the binary form (as stored on chain)."""
        data = bytes(data)
        if len(data) == 34 and data[:2] == bytes((SHA2_256, 32)):
            return cls(0, DAG_PB, data)
        try:
            version, offset = decode_varint(data)
            codec, offset = decode_varint(data, offset)
        except ValueError as error:
            raise InvalidCID(f"malformed binary CID: {error}") from None
        if version != 1:
            raise InvalidCID(f"unsupported binary CID version {version}")
        return cls(1, codec, data[offset:])

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse the text form: ``Qm...`` (v0) or a multibase CIDv1 (``b``, ``B``, ``z``, ``f``, ``F``)."""
        text = text.strip()
        if len(text) == 46 and text.startswith("Qm"):
            return cls(0, DAG_PB, cls._decode(base58.b58decode, text))
        if not text:
            raise InvalidCID("empty CID")
        if text.startswith("Qm"):
            raise InvalidCID(f"{text!r} is not a CID (a CIDv0 is 46 base58 characters)")
        prefix, body = text[0], text[1:]
        if prefix in "bB":
            body = body.upper()
            data = cls._decode(base64.b32decode, body + "=" * (-len(body) % 8))
        elif prefix == "z":
            data = cls._decode(base58.b58decode, body)
        elif prefix in "fF":
            data = cls._decode(bytes.fromhex, body)
        else:
            raise InvalidCID(f"{text!r} is not a CID (unknown multibase prefix {prefix!r})")
        cid = cls.from_bytes(data)
        if cid.version != 1:
            raise InvalidCID(f"{text!r}: a multibase CID must be version 1")
        return cid

    @staticmethod
    def _decode(decoder: Callable[[str], bytes], text: str) -> bytes:
        try:
            return decoder(text)
        except (ValueError, binascii.Error):
            raise InvalidCID(f"{text!r} is not valid in its multibase encoding") from None

    @property
    def hash_code(self) -> int:
        """The multihash function code (0x12 for sha2-256)."""
        return _split_multihash(self.multihash)[0]

    @property
    def digest(self) -> bytes:
        """The multihash digest."""
        return _split_multihash(self.multihash)[1]

    def __bytes__(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return base58.b58encode(self.multihash).decode()
        return "b" + base64.b32encode(bytes(self)).decode().rstrip("=").lower()

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"
