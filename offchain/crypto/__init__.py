"""Encryption of MedShare records.

- :func:`encrypt_stream` / :func:`decrypt_stream` / :func:`decrypt_to_path`:
  streaming AES-256-GCM of one record version under a random data key
  (:func:`new_data_key`), in bounded memory.
- :func:`wrap_data_key` / :func:`unwrap_data_key`: the data key sealed for one
  reader's X25519 public key.
- :class:`Keystore`: a member's X25519 private keys by version, in a file
  sealed under a passphrase.

Every failure raises a :class:`CryptoError`.
"""

from .errors import CryptoError, FormatError, IntegrityError, KeystoreError, KeyWrapError
from .keystore import Keystore
from .keywrap import (
    PUBLIC_KEY_SIZE,
    WRAPPED_KEY_SIZE,
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
    "HEADER_SIZE",
    "PUBLIC_KEY_SIZE",
    "WRAPPED_KEY_SIZE",
    "CryptoError",
    "FormatError",
    "IntegrityError",
    "KeyWrapError",
    "Keystore",
    "KeystoreError",
    "ciphertext_length",
    "decrypt_stream",
    "decrypt_to_path",
    "encrypt_stream",
    "new_data_key",
    "plaintext_length",
    "verify_data_key",
    "raw_public_key",
    "unwrap_data_key",
    "wrap_data_key",
    "wrapped_key_recipient_version",
]
