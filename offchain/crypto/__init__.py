"""Encryption of MedShare records.

- :func:`encrypt_stream` / :func:`decrypt_stream` / :func:`decrypt_to_path`:
  streaming AES-256-GCM of one record version under a random data key
  (:func:`new_data_key`), in bounded memory.
- :func:`wrap_data_key` / :func:`unwrap_data_key`: the data key sealed for one
  reader's public key with HPKE (RFC 9180), in the reader's :class:`KeySuite`
  (X25519, or the hybrid post-quantum MLKEM768-X25519).
- :class:`Keystore`: a member's private keys (:class:`RecipientKey`) by
  version, in a file sealed under a passphrase or by an AES key inside an
  HSM token (:mod:`offchain.hsm`).

Every failure raises a :class:`CryptoError`.
"""

from .errors import CryptoError, FormatError, IntegrityError, KeystoreError, KeyWrapError
from .keystore import Keystore
from .keywrap import (
    DEFAULT_SUITE,
    MAX_WRAPPED_KEY_SIZE,
    PUBLIC_KEY_SIZE,
    KeySuite,
    RecipientKey,
    WrappedKeyHeader,
    check_public_key,
    parse_wrapped_key,
    raw_public_key,
    unwrap_data_key,
    wrap_data_key,
    wrapped_key_recipient_version,
)
from .stream import (
    DATA_KEY_SIZE,
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    ciphertext_length,
    decrypt_stream,
    decrypt_to_path,
    encrypt_stream,
    new_data_key,
    plaintext_length,
    verify_data_key,
)

__all__ = [
    "DATA_KEY_SIZE",
    "DEFAULT_SEGMENT_SIZE",
    "DEFAULT_SUITE",
    "HEADER_SIZE",
    "MAX_WRAPPED_KEY_SIZE",
    "PUBLIC_KEY_SIZE",
    "CryptoError",
    "FormatError",
    "IntegrityError",
    "KeySuite",
    "KeyWrapError",
    "Keystore",
    "KeystoreError",
    "RecipientKey",
    "WrappedKeyHeader",
    "check_public_key",
    "ciphertext_length",
    "decrypt_stream",
    "decrypt_to_path",
    "encrypt_stream",
    "new_data_key",
    "parse_wrapped_key",
    "plaintext_length",
    "verify_data_key",
    "raw_public_key",
    "unwrap_data_key",
    "wrap_data_key",
    "wrapped_key_recipient_version",
]
