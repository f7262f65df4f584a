"""Wrapping a record's data key for one reader (ECIES on X25519).

The owner makes a fresh ephemeral X25519 key pair per wrap, agrees a shared
secret with the reader's published public key, and derives an AES-256-GCM key
and nonce from it with HKDF-SHA256. Layout of a wrapped key (89 bytes)::

    magic "MSKW" | format version u8 | recipient key version u32
    | ephemeral public key (32 bytes) | AES-256-GCM(data key) (32 + 16 bytes)

With ``context = header || recipient public key || record id (bytes32) ||
record version (uint256)``::

    shared      = X25519(ephemeral private key, recipient public key)
    key | nonce = HKDF-SHA256(ikm = shared, no salt,
                              info = "MedShare key wrap v1" || context, 44 bytes)
    sealed      = AES-256-GCM(key, nonce, data key, aad = context)

so a blob only unwraps with the recipient's private key, for the record
version it was made for, and unmodified. A fresh ephemeral key per wrap makes
the derived key and nonce single-use.
"""

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .binding import record_binding
from .errors import KeyWrapError
from .stream import DATA_KEY_SIZE, TAG_SIZE, check_data_key

PUBLIC_KEY_SIZE = 32
MAX_KEY_VERSION = 2**32 - 1

WRAP_MAGIC = b"MSKW"
WRAP_FORMAT_VERSION = 1
_WRAP_HEADER = struct.Struct(f">4sBI{PUBLIC_KEY_SIZE}s")
WRAPPED_KEY_SIZE = _WRAP_HEADER.size + DATA_KEY_SIZE + TAG_SIZE
_NONCE_SIZE = 12
_KDF_LABEL = b"MedShare key wrap v1"


def wrap_data_key(
    data_key: bytes,
    recipient_public_key: bytes,
    recipient_key_version: int,
    record_id: bytes,
    record_version: int,
) -> bytes:
    """Wrap ``data_key`` for the holder of ``recipient_public_key`` (raw 32-byte X25519).

    ``recipient_key_version`` is the version of that key in the key registry;
    it travels in the clear so the reader knows which private key to use.
    """
    check_data_key(data_key)
    check_key_version(recipient_key_version)
    binding = record_binding(record_id, record_version)
    recipient = _load_public_key(recipient_public_key)
    ephemeral = X25519PrivateKey.generate()
    header = _WRAP_HEADER.pack(
        WRAP_MAGIC, WRAP_FORMAT_VERSION, recipient_key_version, raw_public_key(ephemeral.public_key())
    )
    shared = _exchange(ephemeral, recipient)
    aead, nonce, context = _derive(shared, header, recipient_public_key, binding)
    return header + aead.encrypt(nonce, bytes(data_key), context)


def unwrap_data_key(wrapped: bytes, private_key: X25519PrivateKey, record_id: bytes, record_version: int) -> bytes:
    """Return the data key in ``wrapped`` using the reader's ``private_key``.

    Raises :class:`KeyWrapError` if the blob is malformed, was made for
    another key or another record version, or was modified.
    """
    if not isinstance(private_key, X25519PrivateKey):
        raise TypeError(f"private_key must be an X25519PrivateKey, not {type(private_key).__name__}")
    binding = record_binding(record_id, record_version)
    recipient_key_version, ephemeral_public_key = _parse_header(wrapped)
    shared = _exchange(private_key, _load_public_key(ephemeral_public_key))
    header = bytes(wrapped[: _WRAP_HEADER.size])
    aead, nonce, context = _derive(shared, header, raw_public_key(private_key.public_key()), binding)
    try:
        return aead.decrypt(nonce, bytes(wrapped[_WRAP_HEADER.size :]), context)
    except InvalidTag:
        raise KeyWrapError(
            f"cannot unwrap the data key (wrapped for recipient key version {recipient_key_version}): "
            "it was wrapped for another private key or another record id or version, or it was modified"
        ) from None


def wrapped_key_recipient_version(wrapped: bytes) -> int:
    """Return the recipient key version a wrapped key was made for."""
    return _parse_header(wrapped)[0]


def raw_public_key(public_key: X25519PublicKey) -> bytes:
    """Return the 32-byte raw encoding of an X25519 public key (as the key registry holds it)."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_key_version(version: int) -> None:
    """Raise ``ValueError`` unless ``version`` is a key version (1 to 2**32 - 1)."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"key version must be an int, not {type(version).__name__}")
    if not 1 <= version <= MAX_KEY_VERSION:
        raise ValueError(f"key version must be 1 to {MAX_KEY_VERSION}, got {version}")


def _parse_header(wrapped: bytes) -> tuple[int, bytes]:
    if not isinstance(wrapped, (bytes, bytearray, memoryview)):
        raise TypeError(f"wrapped key must be bytes, not {type(wrapped).__name__}")
    if len(wrapped) != WRAPPED_KEY_SIZE:
        raise KeyWrapError(f"malformed wrapped key: {len(wrapped)} bytes, expected {WRAPPED_KEY_SIZE}")
    magic, version, recipient_key_version, ephemeral_public_key = _WRAP_HEADER.unpack_from(wrapped)
    if magic != WRAP_MAGIC:
        raise KeyWrapError("malformed wrapped key: wrong magic bytes")
    if version != WRAP_FORMAT_VERSION:
        raise KeyWrapError(
            f"unsupported wrapped key format version {version} (this build reads {WRAP_FORMAT_VERSION})"
        )
    if recipient_key_version == 0:
        raise KeyWrapError("malformed wrapped key: recipient key version 0")
    return recipient_key_version, ephemeral_public_key


def _load_public_key(raw: bytes) -> X25519PublicKey:
    if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) != PUBLIC_KEY_SIZE:
        raise KeyWrapError(f"an X25519 public key must be {PUBLIC_KEY_SIZE} raw bytes")
    return X25519PublicKey.from_public_bytes(bytes(raw))


def _exchange(own: X25519PrivateKey, peer: X25519PublicKey) -> bytes:
    try:
        return own.exchange(peer)
    except ValueError:
        # X25519 yields all zeros for low-order points; such a key carries no secret.
        raise KeyWrapError("invalid X25519 public key (low-order point)") from None


def _derive(shared: bytes, header: bytes, recipient_public_key: bytes, binding: bytes) -> tuple[AESGCM, bytes, bytes]:
    """Return the AEAD, nonce and associated data of one wrap."""
    context = header + bytes(recipient_public_key) + binding
    okm = HKDF(
        algorithm=hashes.SHA256(), length=DATA_KEY_SIZE + _NONCE_SIZE, salt=None, info=_KDF_LABEL + context
    ).derive(shared)
    return AESGCM(okm[:DATA_KEY_SIZE]), okm[DATA_KEY_SIZE:], context
