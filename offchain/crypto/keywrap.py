"""Wrapping a record's data key for one reader: HPKE (RFC 9180) base mode.

A data key is sealed with HPKE's single-shot ``Seal`` from ``cryptography``
(:mod:`cryptography.hazmat.primitives.hpke`), never by hand, in one of two
suites, chosen by the reader when creating keys (:class:`KeySuite`):

========================  ==========================  ===========  ============
suite                     KEM (id)                    KDF (id)     AEAD (id)
========================  ==========================  ===========  ============
``x25519`` (default)      DHKEM(X25519, HKDF-SHA256)  HKDF-SHA256  AES-256-GCM
                          (0x0020)                    (0x0001)     (0x0002)
``mlkem768-x25519``       MLKEM768-X25519 (X-Wing)    HKDF-SHA256  AES-256-GCM
(hybrid post-quantum)     (0x647A)                    (0x0001)     (0x0002)
========================  ==========================  ===========  ============

Layout of a wrapped key (format 2; 95 bytes for ``x25519``, 1,183 for
``mlkem768-x25519``)::

    magic "MSKW" | format version u8 = 2 | KEM id u16 | KDF id u16 | AEAD id u16
    | recipient key version u32 | enc (32 or 1,120 bytes) | sealed data key (32 + 16 bytes)

where ``enc || sealed = Seal(pkR, info, aad = "", data key)`` and::

    info = "MedShare key wrap v2" || the 15 header bytes above
           || recipient public key (32 or 1,216 bytes) || record id (bytes32)
           || record version (uint256, big-endian)

so a blob only unwraps with the recipient's private key, for the record
version it was made for, and unmodified (the header travels in ``info``).
Each wrap has a fresh ephemeral key (HPKE's ``Encap``).

Format 1 (89 bytes, no suite tag: ``"MSKW" | 1 | key version u32 |
ephemeral key | AES-256-GCM``) was a hand-built X25519 + HKDF-SHA256 +
AES-256-GCM construction; wraps in it are still unwrapped
(:func:`_open_format_1`) but never made.

Public keys are raw bytes: X25519's 32 bytes, or MLKEM768-X25519's 1,216
(ML-KEM-768 public key || X25519 public key). Private keys are 32 bytes: the
X25519 scalar, or the X-Wing seed that SHAKE256 expands into the ML-KEM-768
seed and the X25519 scalar (draft-connolly-cfrg-xwing-kem, draft-ietf-hpke-pq).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .binding import record_binding
from .errors import KeyWrapError
from .stream import DATA_KEY_SIZE, TAG_SIZE, check_data_key

MAX_KEY_VERSION = 2**32 - 1
PRIVATE_KEY_SIZE = 32
WRAP_MAGIC = b"MSKW"
WRAP_FORMAT_VERSION = 2
_INFO_LABEL = b"MedShare key wrap v2"
_HEADER = struct.Struct(">4sBHHHI")
_MLKEM_SEED_SIZE = 64


class KeySuite(enum.Enum):
    """The HPKE suite of a reader's key pair, and of the data keys wrapped for it."""

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"

    @property
    def kem_id(self) -> int:
        """The RFC 9180 KEM identifier (IANA HPKE registry)."""
        return _KEM_IDS[self]

    @property
    def kdf_id(self) -> int:
        return 0x0001  # HKDF-SHA256

    @property
    def aead_id(self) -> int:
        return 0x0002  # AES-256-GCM

    @property
    def public_key_size(self) -> int:
        return _PUBLIC_KEY_SIZES[self]

    @property
    def wrapped_key_size(self) -> int:
        """The size of a data key wrapped in this suite."""
        return _HEADER.size + _hpke_kem(self).enc_length() + DATA_KEY_SIZE + TAG_SIZE

    @property
    def description(self) -> str:
        """The suite by its RFC 9180 names, e.g. for a portal listing keys."""
        return f"{_KEM_NAMES[self]}, HKDF-SHA256, AES-256-GCM"

    @classmethod
    def from_kem_id(cls, kem_id: int) -> KeySuite:
        """The suite whose KEM is ``kem_id``; KeyWrapError for a KEM this build does not use."""
        for suite, known in _KEM_IDS.items():
            if known == kem_id:
                return suite
        raise KeyWrapError(f"unsupported HPKE KEM id 0x{kem_id:04x} (this build uses "
                           + ", ".join(f"0x{k:04x}" for k in _KEM_IDS.values()) + ")")

    def hpke_suite(self) -> hpke.Suite:
        """The ``cryptography`` HPKE suite that seals and opens wraps of this suite."""
        return hpke.Suite(self.hpke_suite_kem(), hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

    def hpke_suite_kem(self) -> hpke.KEM:
        """The suite's KEM in ``cryptography``'s HPKE."""
        return _hpke_kem(self)


DEFAULT_SUITE = KeySuite.X25519
_KEM_IDS = {KeySuite.X25519: 0x0020, KeySuite.MLKEM768_X25519: 0x647A}
_KEM_NAMES = {KeySuite.X25519: "DHKEM(X25519, HKDF-SHA256)", KeySuite.MLKEM768_X25519: "MLKEM768-X25519"}
_PUBLIC_KEY_SIZES = {KeySuite.X25519: 32, KeySuite.MLKEM768_X25519: 1184 + 32}
PUBLIC_KEY_SIZE = _PUBLIC_KEY_SIZES[KeySuite.X25519]




def _hpke_kem(suite: KeySuite) -> hpke.KEM:
    return hpke.KEM.X25519 if suite is KeySuite.X25519 else hpke.KEM.MLKEM768_X25519


MAX_WRAPPED_KEY_SIZE = max(suite.wrapped_key_size for suite in KeySuite)


class RecipientKey:
    """A reader's private key of either suite, with its raw public key.

    Never shows the private key in ``repr``.
    """

    def __init__(self, suite: KeySuite, private_bytes: bytes) -> None:
        if not isinstance(suite, KeySuite):
            raise TypeError(f"suite must be a KeySuite, not {type(suite).__name__}")
        if not isinstance(private_bytes, (bytes, bytearray)) or len(private_bytes) != PRIVATE_KEY_SIZE:
            raise ValueError(f"a private key is {PRIVATE_KEY_SIZE} raw bytes")
        self.suite = suite
        self._private_bytes = bytes(private_bytes)
        if suite is KeySuite.X25519:
            key = X25519PrivateKey.from_private_bytes(self._private_bytes)
            self._hpke_key: X25519PrivateKey | hpke.MLKEM768X25519PrivateKey = key
            self.public_key = raw_public_key(key.public_key())
        else:
            expanded = hashlib.shake_256(self._private_bytes).digest(_MLKEM_SEED_SIZE + PRIVATE_KEY_SIZE)
            mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:_MLKEM_SEED_SIZE])
            x25519 = X25519PrivateKey.from_private_bytes(expanded[_MLKEM_SEED_SIZE:])
            self._hpke_key = hpke.MLKEM768X25519PrivateKey(mlkem, x25519)
            self.public_key = mlkem.public_key().public_bytes_raw() + raw_public_key(x25519.public_key())

    @classmethod
    def generate(cls, suite: KeySuite = DEFAULT_SUITE) -> RecipientKey:
        """A new key pair from the OS's randomness."""
        if suite is KeySuite.X25519:
            return cls(suite, X25519PrivateKey.generate().private_bytes_raw())
        return cls(suite, secrets.token_bytes(PRIVATE_KEY_SIZE))

    @classmethod
    def from_x25519(cls, private_key: X25519PrivateKey) -> RecipientKey:
        return cls(KeySuite.X25519, private_key.private_bytes_raw())

    @property
    def hpke_private_key(self) -> X25519PrivateKey | hpke.MLKEM768X25519PrivateKey:
        """The ``cryptography`` private key object HPKE opens with."""
        return self._hpke_key

    def private_bytes_raw(self) -> bytes:
        """The 32 private bytes (X25519 scalar or X-Wing seed), for sealing in a keystore."""
        return self._private_bytes

    def __repr__(self) -> str:
        return f"RecipientKey(suite={self.suite.value!r}, public_key={self.public_key[:8].hex()}...)"


@dataclass(frozen=True)
class WrappedKeyHeader:
    """What a wrapped key says in the clear: its format, suite and the recipient key version."""

    format_version: int
    suite: KeySuite
    recipient_key_version: int


def wrap_data_key(
    data_key: bytes,
    recipient_public_key: bytes,
    recipient_key_version: int,
    record_id: bytes,
    record_version: int,
    suite: KeySuite = DEFAULT_SUITE,
) -> bytes:
    """Wrap ``data_key`` for the holder of ``recipient_public_key`` (raw bytes of ``suite``).

    ``recipient_key_version`` is the version of that key in the key registry;
    it travels in the clear so the reader knows which private key to use.
    """
    check_data_key(data_key)
    check_key_version(recipient_key_version)
    if not isinstance(suite, KeySuite):
        raise TypeError(f"suite must be a KeySuite, not {type(suite).__name__}")
    binding = record_binding(record_id, record_version)
    recipient = load_public_key(suite, recipient_public_key)
    header = _HEADER.pack(
        WRAP_MAGIC, WRAP_FORMAT_VERSION, suite.kem_id, suite.kdf_id, suite.aead_id, recipient_key_version
    )
    return header + hpke_seal(suite, recipient, bytes(data_key), _info(header, recipient_public_key, binding))


def unwrap_data_key(
    wrapped: bytes, private_key: RecipientKey | X25519PrivateKey, record_id: bytes, record_version: int
) -> bytes:
    """Return the data key in ``wrapped`` using the reader's ``private_key``.

    Reads both formats (2: HPKE; 1: the pre-HPKE X25519 wrap). Raises
    :class:`KeyWrapError` if the blob is malformed, was made for another key,
    another suite or another record version, or was modified.
    """
    if isinstance(private_key, X25519PrivateKey):
        private_key = RecipientKey.from_x25519(private_key)
    if not isinstance(private_key, RecipientKey):
        raise TypeError(
            f"private_key must be a RecipientKey or an X25519PrivateKey, not {type(private_key).__name__}"
        )
    binding = record_binding(record_id, record_version)
    header = parse_wrapped_key(wrapped)
    if header.suite is not private_key.suite:
        raise KeyWrapError(
            f"the data key was wrapped for a {header.suite.value} key, not this {private_key.suite.value} key"
        )
    if header.format_version == 1:
        return _open_format_1(wrapped, private_key, binding)
    info = _info(bytes(wrapped[: _HEADER.size]), private_key.public_key, binding)
    try:
        return hpke_open(private_key, bytes(wrapped[_HEADER.size :]), info)
    except InvalidTag:
        raise _cannot_unwrap(header.recipient_key_version) from None


def hpke_seal(
    suite: KeySuite, public_key: X25519PublicKey | hpke.MLKEM768X25519PublicKey, plaintext: bytes, info: bytes
) -> bytes:
    """HPKE base-mode single-shot ``Seal`` (empty aad) in ``suite``: returns ``enc || ciphertext``."""
    try:
        return suite.hpke_suite().encrypt(plaintext, public_key, info=info)
    except ValueError:
        # DHKEM's Encap refuses a low-order point: the all-zero shared secret carries no secret.
        raise KeyWrapError("invalid X25519 public key (low-order point)") from None


def hpke_open(private_key: RecipientKey, sealed: bytes, info: bytes, *, suite: hpke.Suite | None = None) -> bytes:
    """HPKE base-mode single-shot ``Open`` (empty aad) of ``enc || ciphertext`` with ``private_key``.

    ``suite`` defaults to the key's :meth:`KeySuite.hpke_suite` (a test may
    pass the same KEM and KDF with another AEAD). Raises ``InvalidTag``.
    """
    return (suite or private_key.suite.hpke_suite()).decrypt(sealed, private_key.hpke_private_key, info=info)


def parse_wrapped_key(wrapped: bytes) -> WrappedKeyHeader:
    """Check a wrapped key's shape and return its clear header (format, suite, recipient key version)."""
    if not isinstance(wrapped, (bytes, bytearray, memoryview)):
        raise TypeError(f"wrapped key must be bytes, not {type(wrapped).__name__}")
    if len(wrapped) < 5 or bytes(wrapped[:4]) != WRAP_MAGIC:
        raise KeyWrapError("malformed wrapped key: wrong magic bytes" if len(wrapped) >= 5
                           else f"malformed wrapped key: {len(wrapped)} bytes")
    format_version = wrapped[4]
    if format_version == 1:
        if len(wrapped) != _FORMAT_1_SIZE:
            raise KeyWrapError(f"malformed wrapped key: {len(wrapped)} bytes, expected {_FORMAT_1_SIZE}")
        suite, recipient_key_version = KeySuite.X25519, _FORMAT_1_HEADER.unpack_from(wrapped)[2]
    elif format_version == WRAP_FORMAT_VERSION:
        if len(wrapped) < _HEADER.size:
            raise KeyWrapError(f"malformed wrapped key: {len(wrapped)} bytes")
        _, _, kem_id, kdf_id, aead_id, recipient_key_version = _HEADER.unpack_from(wrapped)
        suite = KeySuite.from_kem_id(kem_id)
        if (kdf_id, aead_id) != (suite.kdf_id, suite.aead_id):
            raise KeyWrapError(
                f"unsupported HPKE suite: KDF 0x{kdf_id:04x}, AEAD 0x{aead_id:04x} "
                f"(this build uses 0x{suite.kdf_id:04x}, 0x{suite.aead_id:04x})"
            )
        if len(wrapped) != suite.wrapped_key_size:
            raise KeyWrapError(
                f"malformed wrapped key: {len(wrapped)} bytes, expected {suite.wrapped_key_size} for {suite.value}"
            )
    else:
        raise KeyWrapError(
            f"unsupported wrapped key format version {format_version} (this build reads 1 and {WRAP_FORMAT_VERSION})"
        )
    if recipient_key_version == 0:
        raise KeyWrapError("malformed wrapped key: recipient key version 0")
    return WrappedKeyHeader(format_version, suite, recipient_key_version)


def wrapped_key_recipient_version(wrapped: bytes) -> int:
    """Return the recipient key version a wrapped key was made for."""
    return parse_wrapped_key(wrapped).recipient_key_version


def raw_public_key(public_key: X25519PublicKey) -> bytes:
    """Return the 32-byte raw encoding of an X25519 public key (as the key registry holds it)."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_key_version(version: int) -> None:
    """Raise ``ValueError`` unless ``version`` is a key version (1 to 2**32 - 1)."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"key version must be an int, not {type(version).__name__}")
    if not 1 <= version <= MAX_KEY_VERSION:
        raise ValueError(f"key version must be 1 to {MAX_KEY_VERSION}, got {version}")


def check_public_key(suite: KeySuite, raw: bytes) -> None:
    """Raise :class:`KeyWrapError` unless ``raw`` is a public key of ``suite``."""
    load_public_key(suite, raw)


def _info(header: bytes, recipient_public_key: bytes, binding: bytes) -> bytes:
    return _INFO_LABEL + header + bytes(recipient_public_key) + binding


def _cannot_unwrap(recipient_key_version: int) -> KeyWrapError:
    return KeyWrapError(
        f"cannot unwrap the data key (wrapped for recipient key version {recipient_key_version}): "
        "it was wrapped for another private key or another record id or version, or it was modified"
    )


def load_public_key(suite: KeySuite, raw: bytes) -> X25519PublicKey | hpke.MLKEM768X25519PublicKey:
    """The ``cryptography`` public key object of ``raw`` bytes of ``suite``; KeyWrapError if they are not one."""
    size = suite.public_key_size
    if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) != size:
        raise KeyWrapError(f"a {suite.value} public key must be {size} raw bytes")
    raw = bytes(raw)
    if suite is KeySuite.X25519:
        return X25519PublicKey.from_public_bytes(raw)
    try:
        mlkem = MLKEM768PublicKey.from_public_bytes(raw[:-PUBLIC_KEY_SIZE])
    except ValueError:
        raise KeyWrapError("invalid ML-KEM-768 public key") from None
    return hpke.MLKEM768X25519PublicKey(mlkem, X25519PublicKey.from_public_bytes(raw[-PUBLIC_KEY_SIZE:]))


# Format 1: the pre-HPKE wrap, read only --------------------------------------

_FORMAT_1_HEADER = struct.Struct(f">4sBI{PUBLIC_KEY_SIZE}s")
_FORMAT_1_SIZE = _FORMAT_1_HEADER.size + DATA_KEY_SIZE + TAG_SIZE
_FORMAT_1_LABEL = b"MedShare key wrap v1"
_FORMAT_1_NONCE_SIZE = 12


def _open_format_1(wrapped: bytes, private_key: RecipientKey, binding: bytes) -> bytes:
    """Unwrap ``X25519(eph, pkR) -> HKDF-SHA256(info = label || context) -> AES-256-GCM(aad = context)``,
    ``context = header || recipient public key || binding``."""
    _, _, recipient_key_version, ephemeral = _FORMAT_1_HEADER.unpack_from(wrapped)
    try:
        shared = private_key.hpke_private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    except ValueError:
        raise KeyWrapError("invalid X25519 public key (low-order point)") from None
    context = bytes(wrapped[: _FORMAT_1_HEADER.size]) + private_key.public_key + binding
    okm = HKDF(
        algorithm=hashes.SHA256(), length=DATA_KEY_SIZE + _FORMAT_1_NONCE_SIZE, salt=None,
        info=_FORMAT_1_LABEL + context,
    ).derive(shared)
    try:
        return AESGCM(okm[:DATA_KEY_SIZE]).decrypt(
            okm[DATA_KEY_SIZE:], bytes(wrapped[_FORMAT_1_HEADER.size :]), context
        )
    except InvalidTag:
        raise _cannot_unwrap(recipient_key_version) from None
