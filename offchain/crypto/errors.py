"""Errors raised by ``offchain.crypto``.

Every error derives from :class:`CryptoError`, so a caller that only needs to
refuse a record catches that one class. Messages name what failed and where
(segment index, key version, file path) but never contain key material or
passphrases.
"""

from offchain.errors import MedShareError


class CryptoError(MedShareError):
    """Base class of every error raised by ``offchain.crypto``."""


class FormatError(CryptoError):
    """The input is not an encrypted stream this version understands.

    Raised for a wrong magic number, an unsupported format version or
    algorithm, an out-of-range segment size, or a header cut short.
    """


class IntegrityError(CryptoError):
    """An encrypted stream failed authentication.

    Raised for any modification, reordering, truncation, splicing or appended
    data, and for a wrong data key, record id or record version: AES-GCM cannot
    tell these apart, so the message lists them.
    """


class KeyWrapError(CryptoError):
    """A wrapped data key could not be unwrapped, or a key could not be wrapped."""


class KeystoreError(CryptoError):
    """The local keystore could not be created, opened, unlocked or written."""
