"""Streaming AES-256-GCM for record files (a STREAM construction).

The construction follows Hoang, Reyhanitabar, Rogaway and Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance" (CRYPTO 2015),
as Tink's ``AesGcmHkdfStreaming`` instantiates it.

Layout::

    header || segment_0 || segment_1 || ... || segment_{n-1}

    header   = magic "MSEC" | format version u8 (2) | AEAD id u8 | KDF id u8
               | segment size u32 | salt (32 bytes) | nonce prefix (7 bytes)
               | key commitment (32 bytes)
    commitment = HKDF-SHA256(ikm = data key, salt = salt,
                             info = "MedShare key commitment v2" || header up to the commitment)
    subkey   = HKDF-SHA256(ikm = data key, salt = salt,
                           info = "MedShare stream subkey v1" || header)
    nonce_i  = nonce prefix | i as u32 | last flag u8 (1 for the last segment, else 0)
    aad_i    = header | record id (bytes32) | record version (uint256)
               | i as u32 | last flag u8
    segment_i = AES-256-GCM(subkey, nonce_i, plaintext_i, aad_i)  (plaintext + 16-byte tag)

All integers are big-endian. Every segment but the last holds exactly
``segment size`` plaintext bytes; the last holds 0 to ``segment size`` bytes
and is the only one sealed with the last flag set. So an empty plaintext is
one empty final segment, and a plaintext whose length is a multiple of the
segment size ends with a full final segment. A stream has at most 2**32
segments. Hence:

- any flipped bit, a changed header, or a wrong key, record id or version fails
  the tag of the segment it touches (the header is in every segment's AAD);
- reordering or duplicating segments fails, as the index is in nonce and AAD;
- cutting the stream anywhere, even at a segment boundary, fails, because the
  new final segment was not sealed as last; appended bytes fail likewise;
- segments spliced from another file fail, because each file's random salt
  gives it its own subkey;
- a key other than the one the stream was made with is refused before any
  segment is opened, by the key commitment: AES-GCM alone does not commit to
  its key, so without it one ciphertext could be made to open, under two keys,
  to two plaintexts (an owner showing different readers different records
  under one CID), and a reader could not tell a wrong shared key from a
  damaged file. :func:`verify_data_key` checks a candidate key cheaply.

Format version 1 (the same header without the commitment) is still read; its
keys are checked by opening the first segment.

Decryption writes a segment's plaintext only after that segment verified, but
the stream as a whole is authentic only once the call returns: use
:func:`decrypt_to_path`, which publishes the output file only then.
"""

import hmac
import os
import secrets
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .atomic import atomic_write
from .binding import record_binding
from .errors import FormatError, IntegrityError

DATA_KEY_SIZE = 32
TAG_SIZE = 16
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 64
# Caps what an (unauthenticated) header can make the decryptor allocate: three
# buffers of this size keep decryption far below its 64 MiB memory budget.
MAX_SEGMENT_SIZE = 8 << 20

MAGIC = b"MSEC"
FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1
AEAD_AES_256_GCM = 1
KDF_HKDF_SHA256 = 1

_SALT_SIZE = 32
_NONCE_PREFIX_SIZE = 7
_COMMITMENT_SIZE = 32
_HEADER = struct.Struct(f">4sBBBI{_SALT_SIZE}s{_NONCE_PREFIX_SIZE}s")
_LEGACY_HEADER_SIZE = _HEADER.size
HEADER_SIZE = _HEADER.size + _COMMITMENT_SIZE
_SEGMENT_POSITION = struct.Struct(">IB")  # segment index, last flag
_MAX_SEGMENTS = 2**32
_SUBKEY_LABEL = b"MedShare stream subkey v1"
_COMMITMENT_LABEL = b"MedShare key commitment v2"

ProgressCallback = Callable[[int], None]


def new_data_key() -> bytes:
    """Return a fresh random 256-bit data key (use one per record version)."""
    return secrets.token_bytes(DATA_KEY_SIZE)


def ciphertext_length(plaintext_length: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Return the length of the encryption of ``plaintext_length`` bytes."""
    _check_segment_size(segment_size, ValueError)
    if plaintext_length < 0:
        raise ValueError(f"plaintext_length must be >= 0, got {plaintext_length}")
    segments = max(1, -(-plaintext_length // segment_size))
    return HEADER_SIZE + plaintext_length + segments * TAG_SIZE


def plaintext_length(ciphertext_length: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Return the plaintext length of a ciphertext of ``ciphertext_length`` bytes.

    Raises :class:`FormatError` if no plaintext encrypts to that length.
    """
    _check_segment_size(segment_size, ValueError)
    body = ciphertext_length - HEADER_SIZE
    full_segments, rest = divmod(body, segment_size + TAG_SIZE)
    if body < TAG_SIZE or 0 < rest < TAG_SIZE:
        raise FormatError(
            f"no plaintext encrypts to {ciphertext_length} bytes with {segment_size}-byte segments"
        )
    segments = full_segments + (rest > 0)
    return body - segments * TAG_SIZE


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    data_key: bytes,
    record_id: bytes,
    record_version: int,
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    progress: ProgressCallback | None = None,
) -> int:
    """Encrypt ``src`` to ``dst`` for one version of one record; return the bytes written.

    Memory use is three buffers of about ``segment_size`` bytes whatever the
    stream length. ``progress``, if given, is called with the number of
    plaintext bytes of each segment once it is written.
    """
    _check_segment_size(segment_size, ValueError)
    check_data_key(data_key)
    header = _Header(segment_size, secrets.token_bytes(_SALT_SIZE), secrets.token_bytes(_NONCE_PREFIX_SIZE))
    header = header.committed_to(data_key)
    cipher = _SegmentCipher(data_key, header, record_binding(record_id, record_version))
    _write_all(dst, memoryview(cipher.header_bytes))
    return HEADER_SIZE + _transform_segments(src, dst, segment_size, cipher.seal, progress)


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    data_key: bytes,
    record_id: bytes,
    record_version: int,
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Decrypt ``src`` to ``dst``; return the number of plaintext bytes written.

    Each segment is written only after it verified, but if this raises, what
    was already written is an unauthenticated prefix and must be discarded:
    prefer :func:`decrypt_to_path`. Raises :class:`FormatError` if ``src`` is
    not a stream of this format and :class:`IntegrityError` if it does not
    authenticate under this key, record id and version (a key that does not
    match the header's commitment is refused before any segment is read).
    """
    check_data_key(data_key)
    binding = record_binding(record_id, record_version)
    header = _read_header(src)
    if not header.commits_to(data_key):
        raise IntegrityError("wrong data key: it does not match the stream's key commitment")
    cipher = _SegmentCipher(data_key, header, binding)
    return _transform_segments(src, dst, header.segment_size + TAG_SIZE, cipher.open, progress)


def verify_data_key(src: BinaryIO, data_key: bytes, record_id: bytes, record_version: int) -> bool:
    """Whether ``data_key`` is the key the stream read from ``src`` was made with.

    Reads only the header (and, for a format-1 stream, which has no key
    commitment, the first segment, which must authenticate). Raises
    :class:`FormatError` if ``src`` is not a stream of a known format.
    """
    check_data_key(data_key)
    header = _read_header(src)
    if header.commitment is not None:
        return header.commits_to(data_key)
    sealed_size = header.segment_size + TAG_SIZE
    first = memoryview(bytearray(sealed_size + 1))
    filled = _fill(src, first)
    cipher = _SegmentCipher(data_key, header, record_binding(record_id, record_version))
    try:
        cipher.open(0, filled <= sealed_size, first[: min(filled, sealed_size)])
    except IntegrityError:
        return False
    return True


def decrypt_to_path(
    src: BinaryIO,
    path: str | os.PathLike[str],
    data_key: bytes,
    record_id: bytes,
    record_version: int,
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Decrypt ``src`` into the file ``path``; return the number of plaintext bytes.

    The plaintext goes to a temporary file (mode 0600) in the same directory,
    which replaces ``path`` only after the whole stream verified. On any error
    the temporary file is deleted and ``path`` is left as it was, so an
    unauthenticated byte never appears at ``path``.
    """
    with atomic_write(path) as file:
        return decrypt_stream(src, file, data_key, record_id, record_version, progress=progress)


@dataclass(frozen=True)
class _Header:
    segment_size: int
    salt: bytes
    nonce_prefix: bytes
    commitment: bytes | None = None  # None: a format-1 stream

    def _prefix(self) -> bytes:
        version = LEGACY_FORMAT_VERSION if self.commitment is None else FORMAT_VERSION
        return _HEADER.pack(
            MAGIC, version, AEAD_AES_256_GCM, KDF_HKDF_SHA256, self.segment_size, self.salt, self.nonce_prefix
        )

    def encode(self) -> bytes:
        return self._prefix() + (self.commitment or b"")

    def _commitment_of(self, data_key: bytes) -> bytes:
        prefix = _HEADER.pack(
            MAGIC, FORMAT_VERSION, AEAD_AES_256_GCM, KDF_HKDF_SHA256, self.segment_size, self.salt, self.nonce_prefix
        )
        return HKDF(
            algorithm=hashes.SHA256(), length=_COMMITMENT_SIZE, salt=self.salt, info=_COMMITMENT_LABEL + prefix
        ).derive(bytes(data_key))

    def committed_to(self, data_key: bytes) -> "_Header":
        return _Header(self.segment_size, self.salt, self.nonce_prefix, self._commitment_of(data_key))

    def commits_to(self, data_key: bytes) -> bool:
        """False only when the header carries a commitment that ``data_key`` does not match."""
        return self.commitment is None or hmac.compare_digest(self.commitment, self._commitment_of(data_key))

    @classmethod
    def decode(cls, data: memoryview) -> "_Header":
        """Parse the fixed part of a header (the commitment, if any, follows it)."""
        magic, version, aead, kdf, segment_size, salt, nonce_prefix = _HEADER.unpack(data)
        if magic != MAGIC:
            raise FormatError("not a MedShare encrypted stream (wrong magic bytes)")
        if version not in (LEGACY_FORMAT_VERSION, FORMAT_VERSION):
            raise FormatError(
                f"unsupported stream format version {version} (this build reads {LEGACY_FORMAT_VERSION} and "
                f"{FORMAT_VERSION})"
            )
        if aead != AEAD_AES_256_GCM:
            raise FormatError(
                f"unsupported AEAD algorithm id {aead} (this build reads {AEAD_AES_256_GCM}: AES-256-GCM)"
            )
        if kdf != KDF_HKDF_SHA256:
            raise FormatError(f"unsupported KDF id {kdf} (this build reads {KDF_HKDF_SHA256}: HKDF-SHA256)")
        _check_segment_size(segment_size, FormatError)
        return cls(segment_size, salt, nonce_prefix, None if version == LEGACY_FORMAT_VERSION else b"")


def _read_header(src: BinaryIO) -> _Header:
    fixed = memoryview(bytearray(_LEGACY_HEADER_SIZE))
    if _fill(src, fixed) < _LEGACY_HEADER_SIZE:
        raise FormatError("ciphertext is shorter than the stream header")
    header = _Header.decode(fixed)
    if header.commitment is None:
        return header
    commitment = memoryview(bytearray(_COMMITMENT_SIZE))
    if _fill(src, commitment) < _COMMITMENT_SIZE:
        raise FormatError("ciphertext is shorter than the stream header")
    return _Header(header.segment_size, header.salt, header.nonce_prefix, bytes(commitment))


class _SegmentCipher:
    """Seals and opens the segments of one stream, reusing its nonce, AAD and output buffers.

    The segment :meth:`seal` or :meth:`open` returns is valid until the next call.
    """

    def __init__(self, data_key: bytes, header: _Header, binding: bytes) -> None:
        self.header_bytes = header.encode()
        subkey = HKDF(
            algorithm=hashes.SHA256(), length=DATA_KEY_SIZE, salt=header.salt, info=_SUBKEY_LABEL + self.header_bytes
        ).derive(bytes(data_key))
        self._aead = AESGCM(subkey)
        self._nonce = bytearray(header.nonce_prefix + bytes(_SEGMENT_POSITION.size))
        self._aad = bytearray(self.header_bytes + binding + bytes(_SEGMENT_POSITION.size))
        self._out = memoryview(bytearray(header.segment_size + TAG_SIZE))

    def seal(self, index: int, last: bool, plaintext: memoryview) -> memoryview:
        self._set_position(index, last)
        out = self._out[: len(plaintext) + TAG_SIZE]
        self._aead.encrypt_into(self._nonce, plaintext, self._aad, out)
        return out

    def open(self, index: int, last: bool, sealed: memoryview) -> memoryview:
        if len(sealed) < TAG_SIZE:
            raise IntegrityError(
                f"ciphertext is truncated or has trailing data: segment {index} is only {len(sealed)} bytes"
            )
        self._set_position(index, last)
        out = self._out[: len(sealed) - TAG_SIZE]
        try:
            self._aead.decrypt_into(self._nonce, sealed, self._aad, out)
        except InvalidTag:
            if index == 0:
                cause = "wrong data key, record id or record version, or a modified header or segment"
            else:
                cause = "the ciphertext was modified, reordered, truncated, extended or spliced"
            raise IntegrityError(f"segment {index} failed authentication: {cause}") from None
        return out

    def _set_position(self, index: int, last: bool) -> None:
        if index >= _MAX_SEGMENTS:
            raise FormatError(f"stream exceeds {_MAX_SEGMENTS} segments")
        _SEGMENT_POSITION.pack_into(self._nonce, _NONCE_PREFIX_SIZE, index, last)
        _SEGMENT_POSITION.pack_into(self._aad, len(self._aad) - _SEGMENT_POSITION.size, index, last)


def check_data_key(data_key: bytes) -> None:
    """Raise ``ValueError`` unless ``data_key`` is a 256-bit key."""
    if not isinstance(data_key, (bytes, bytearray)) or len(data_key) != DATA_KEY_SIZE:
        raise ValueError(f"data_key must be {DATA_KEY_SIZE} bytes")


def _check_segment_size(segment_size: int, error: type[Exception]) -> None:
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise error(f"segment size must be {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE} bytes, got {segment_size}")


def _transform_segments(
    src: BinaryIO,
    dst: BinaryIO,
    chunk_size: int,
    transform: Callable[[int, bool, memoryview], memoryview],
    progress: ProgressCallback | None,
) -> int:
    """Write ``transform(index, last, chunk)`` of each chunk of ``src`` to ``dst``; return the bytes written."""
    written = 0
    for index, last, chunk in _chunks(src, chunk_size):
        out = transform(index, last, chunk)
        _write_all(dst, out)
        written += len(out)
        if progress is not None:
            progress(min(len(chunk), len(out)))  # the plaintext side, encrypting or decrypting
    return written


def _chunks(src: BinaryIO, size: int) -> Iterator[tuple[int, bool, memoryview]]:
    """Yield ``(index, last, chunk)`` for ``src`` cut into chunks of ``size`` bytes.

    Only the final chunk may be shorter, and at least one chunk (perhaps
    empty) is yielded. A chunk is valid until the next one is requested: the
    two buffers alternate.
    """
    current, ahead = memoryview(bytearray(size)), memoryview(bytearray(size))
    filled = _fill(src, current)
    index = 0
    while True:
        # A chunk is the last one when nothing follows it, so read one ahead.
        filled_ahead = _fill(src, ahead) if filled == size else 0
        last = filled_ahead == 0
        yield index, last, current[:filled]
        if last:
            return
        current, ahead, filled = ahead, current, filled_ahead
        index += 1


def _fill(src: BinaryIO, buffer: memoryview) -> int:
    """Read into ``buffer`` until it is full or ``src`` ends; return the bytes read."""
    readinto = getattr(src, "readinto", None)
    filled = 0
    while filled < len(buffer):
        if readinto is not None:
            count = readinto(buffer[filled:])
        else:
            chunk = src.read(len(buffer) - filled)
            count = len(chunk)
            buffer[filled : filled + count] = chunk
        if count is None:
            raise ValueError("source stream is non-blocking and has no data ready")
        if count == 0:
            break
        filled += count
    return filled


def _write_all(dst: BinaryIO, data: memoryview) -> None:
    # Raw streams may write less than asked; buffered ones write everything.
    while data:
        count = dst.write(data)
        if count is None:
            raise ValueError("destination stream is non-blocking and accepted no data")
        data = data[count:]
