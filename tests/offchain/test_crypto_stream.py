"""Streaming AES-256-GCM: round trips, lengths, and every attack on the format."""

import io
import os
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.crypto import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    CryptoError,
    FormatError,
    IntegrityError,
    ciphertext_length,
    decrypt_stream,
    decrypt_to_path,
    encrypt_stream,
    new_data_key,
    plaintext_length,
    verify_data_key,
)

SEGMENT = 64
SEALED = SEGMENT + 16
RECORD_ID = bytes(range(32))
VERSION = 7
KEY = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
# Header layout: magic 0-3, format version 4, AEAD id 5, KDF id 6, segment size 7-10, salt 11-42, nonce prefix 43-49.
SEGMENT_SIZE_FIELD = slice(7, 11)


def encrypt(plaintext: bytes, key: bytes = KEY, record_id: bytes = RECORD_ID, version: int = VERSION,
            segment_size: int = SEGMENT) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(plaintext), out, key, record_id, version, segment_size=segment_size)
    return out.getvalue()


def decrypt(ciphertext: bytes, key: bytes = KEY, record_id: bytes = RECORD_ID, version: int = VERSION) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(ciphertext), out, key, record_id, version)
    return out.getvalue()


def segments(ciphertext: bytes) -> list[bytes]:
    body = ciphertext[HEADER_SIZE:]
    return [body[i : i + SEALED] for i in range(0, len(body), SEALED)]


def assemble(ciphertext: bytes, parts: list[bytes]) -> bytes:
    return ciphertext[:HEADER_SIZE] + b"".join(parts)


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return os.urandom(3 * SEGMENT + 23)  # four segments, the last one short


@pytest.fixture(scope="module")
def ciphertext(plaintext: bytes) -> bytes:
    return encrypt(plaintext)


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT, 5 * SEGMENT + 17])
def test_round_trip_and_lengths(size: int):
    data = os.urandom(size)
    sealed = encrypt(data)
    assert len(sealed) == ciphertext_length(size, SEGMENT)
    assert plaintext_length(len(sealed), SEGMENT) == size
    assert decrypt(sealed) == data


@pytest.mark.parametrize(
    "size", [0, DEFAULT_SEGMENT_SIZE - 1, DEFAULT_SEGMENT_SIZE, DEFAULT_SEGMENT_SIZE + 1, 3 * DEFAULT_SEGMENT_SIZE + 5]
)
def test_round_trip_with_default_segments(size: int):
    data = os.urandom(size)
    out = io.BytesIO()
    written = encrypt_stream(io.BytesIO(data), out, KEY, RECORD_ID, VERSION)
    assert written == len(out.getvalue()) == ciphertext_length(size)
    assert decrypt(out.getvalue()) == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=1500), segment_size=st.integers(64, 400), version=st.integers(0, 2**256 - 1))
def test_round_trip_property(data: bytes, segment_size: int, version: int):
    sealed = encrypt(data, version=version, segment_size=segment_size)
    assert len(sealed) == ciphertext_length(len(data), segment_size)
    assert plaintext_length(len(sealed), segment_size) == len(data)
    assert decrypt(sealed, version=version) == data


def test_each_encryption_is_fresh(plaintext: bytes, ciphertext: bytes):
    again = encrypt(plaintext)
    assert again[:SEGMENT_SIZE_FIELD.stop] == ciphertext[:SEGMENT_SIZE_FIELD.stop]
    assert again[SEGMENT_SIZE_FIELD.stop : HEADER_SIZE] != ciphertext[SEGMENT_SIZE_FIELD.stop : HEADER_SIZE]
    assert segments(again)[0] != segments(ciphertext)[0]


def test_ciphertext_hides_plaintext():
    sealed = encrypt(bytes(4 * SEGMENT))
    assert bytes(16) not in sealed[HEADER_SIZE:]


def test_every_flipped_bit_is_detected(ciphertext: bytes):
    for position in range(len(ciphertext)):
        # Flipping bits of the algorithm fields or the segment size may make the
        # header unreadable (FormatError) instead of unauthentic.
        expected = (FormatError, IntegrityError) if position < SEGMENT_SIZE_FIELD.stop else IntegrityError
        for bit in range(8):
            tampered = bytearray(ciphertext)
            tampered[position] ^= 1 << bit
            with pytest.raises(expected):
                decrypt(bytes(tampered))


def test_truncation_anywhere_is_detected(ciphertext: bytes):
    for length in range(len(ciphertext)):
        expected = FormatError if length < HEADER_SIZE else IntegrityError
        with pytest.raises(expected):
            decrypt(ciphertext[:length])


def test_dropping_final_segments_is_detected(ciphertext: bytes):
    parts = segments(ciphertext)
    for kept in range(1, len(parts)):
        # Each cut ends on a segment boundary, so every segment left is intact.
        with pytest.raises(IntegrityError, match=f"segment {kept - 1} failed authentication"):
            decrypt(assemble(ciphertext, parts[:kept]))


def test_header_alone_is_detected(ciphertext: bytes):
    with pytest.raises(IntegrityError, match="segment 0 is only 0 bytes"):
        decrypt(ciphertext[:HEADER_SIZE])


@pytest.mark.parametrize(
    "rearrange",
    [
        pytest.param(lambda p: [p[1], p[0], *p[2:]], id="swap-first-two"),
        pytest.param(lambda p: [p[0], p[2], p[1], p[3]], id="swap-middle"),
        pytest.param(lambda p: [p[0], p[1], p[1], p[2], p[3]], id="duplicate-middle"),
        pytest.param(lambda p: [p[0], p[0], *p[1:]], id="duplicate-first"),
        pytest.param(lambda p: [p[0], p[2], p[3]], id="drop-middle"),
        pytest.param(lambda p: p[1:], id="drop-first"),
        pytest.param(lambda p: [*p, p[3]], id="duplicate-last"),
        pytest.param(lambda p: [p[0], p[1], p[3], p[2]], id="short-last-moved-up"),
    ],
)
def test_rearranged_segments_are_detected(ciphertext: bytes, rearrange):
    parts = segments(ciphertext)
    assert len(parts) == 4
    with pytest.raises(IntegrityError):
        decrypt(assemble(ciphertext, rearrange(parts)))


def test_splicing_between_files_with_the_same_key_is_detected(plaintext: bytes, ciphertext: bytes):
    other = encrypt(plaintext)  # same key, record, version and plaintext; fresh salt
    ours, theirs = segments(ciphertext), segments(other)
    for index in range(len(ours)):
        spliced = ours[:index] + [theirs[index]] + ours[index + 1 :]
        with pytest.raises(IntegrityError, match=f"segment {index} failed"):
            decrypt(assemble(ciphertext, spliced))
    with pytest.raises(IntegrityError, match="segment 0 failed"):
        decrypt(other[:HEADER_SIZE] + ciphertext[HEADER_SIZE:])


@pytest.mark.parametrize(
    "record_id, version",
    [
        pytest.param(bytes(32), VERSION, id="other-record"),
        pytest.param(RECORD_ID, VERSION + 1, id="next-version"),
        pytest.param(RECORD_ID, VERSION - 1, id="previous-version"),
        pytest.param(RECORD_ID, VERSION + 2**64, id="version-beyond-64-bits"),
    ],
)
def test_wrong_record_or_version_is_detected(ciphertext: bytes, record_id: bytes, version: int):
    expected = "segment 0 failed authentication: wrong data key, record id or record version"
    with pytest.raises(IntegrityError, match=expected):
        decrypt(ciphertext, record_id=record_id, version=version)


def test_wrong_key_is_detected(ciphertext: bytes):
    with pytest.raises(IntegrityError, match="key commitment"):
        decrypt(ciphertext, key=new_data_key())


@pytest.mark.parametrize(
    "offset, value, error, message",
    [
        pytest.param(0, b"MSED", FormatError, "wrong magic", id="magic"),
        pytest.param(4, b"\x03", FormatError, "format version 3", id="format-version"),
        pytest.param(4, b"\x00", FormatError, "format version 0", id="format-version-0"),
        pytest.param(5, b"\x02", FormatError, "AEAD algorithm id 2", id="aead-id"),
        pytest.param(6, b"\x02", FormatError, "KDF id 2", id="kdf-id"),
        pytest.param(7, struct.pack(">I", 63), FormatError, "segment size must be 64", id="segment-size-too-small"),
        pytest.param(7, struct.pack(">I", (8 << 20) + 1), FormatError, "segment size", id="segment-size-too-large"),
        pytest.param(7, struct.pack(">I", 2 * SEGMENT), IntegrityError, "key commitment", id="segment-size-valid-other"),
        pytest.param(11, b"\x00" * 32, IntegrityError, "key commitment", id="salt"),
        pytest.param(43, b"\x00" * 7, IntegrityError, "key commitment", id="nonce-prefix"),
        pytest.param(50, b"\x00" * 32, IntegrityError, "key commitment", id="commitment"),
    ],
)
def test_header_changes_are_detected(ciphertext: bytes, offset: int, value: bytes, error, message: str):
    tampered = bytearray(ciphertext)
    tampered[offset : offset + len(value)] = value
    assert bytes(tampered) != ciphertext
    with pytest.raises(error, match=message):
        decrypt(bytes(tampered))


@pytest.mark.parametrize("extra", [b"\x00", bytes(15), bytes(16), bytes(SEALED), bytes(SEALED + 1)], ids=len)
def test_appended_bytes_are_detected(ciphertext: bytes, extra: bytes):
    with pytest.raises(IntegrityError):
        decrypt(ciphertext + extra)


def test_appending_to_a_stream_with_a_full_last_segment_is_detected():
    sealed = encrypt(os.urandom(2 * SEGMENT))
    with pytest.raises(IntegrityError, match="segment 1 failed"):
        decrypt(sealed + segments(sealed)[0])


def test_only_verified_segments_are_written(plaintext: bytes, ciphertext: bytes):
    tampered = bytearray(ciphertext)
    tampered[HEADER_SIZE + 2 * SEALED + 5] ^= 0x80
    out = io.BytesIO()
    with pytest.raises(IntegrityError, match="segment 2 failed authentication: the ciphertext was modified"):
        decrypt_stream(io.BytesIO(bytes(tampered)), out, KEY, RECORD_ID, VERSION)
    assert out.getvalue() == plaintext[: 2 * SEGMENT]


def test_not_a_stream_at_all():
    with pytest.raises(FormatError, match="shorter than the stream header"):
        decrypt(b"hello")
    with pytest.raises(FormatError, match="wrong magic"):
        decrypt(b"%PDF-1.7" + bytes(100))


def test_decrypt_to_path_publishes_only_verified_output(tmp_path, plaintext: bytes, ciphertext: bytes):
    target = tmp_path / "record.bin"
    assert decrypt_to_path(io.BytesIO(ciphertext), target, KEY, RECORD_ID, VERSION) == len(plaintext)
    assert target.read_bytes() == plaintext
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["record.bin"]


def test_decrypt_to_path_leaves_nothing_on_tamper(tmp_path, ciphertext: bytes):
    target = tmp_path / "record.bin"
    tampered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])  # only the last segment fails
    with pytest.raises(IntegrityError, match="segment 3"):
        decrypt_to_path(io.BytesIO(tampered), target, KEY, RECORD_ID, VERSION)
    assert os.listdir(tmp_path) == []


def test_decrypt_to_path_keeps_an_existing_file_on_failure_and_replaces_it_on_success(
    tmp_path, plaintext: bytes, ciphertext: bytes
):
    target = tmp_path / "record.bin"
    target.write_bytes(b"previous version")
    with pytest.raises(IntegrityError):
        decrypt_to_path(io.BytesIO(ciphertext[:-1]), target, KEY, RECORD_ID, VERSION)
    assert target.read_bytes() == b"previous version"
    decrypt_to_path(io.BytesIO(ciphertext), target, KEY, RECORD_ID, VERSION)
    assert target.read_bytes() == plaintext
    assert os.listdir(tmp_path) == ["record.bin"]


class Trickle(io.RawIOBase):
    """A pipe-like stream: reads return and writes accept at most a few bytes."""

    def __init__(self, data: bytes = b"", step: int = 7):
        self.data, self.step, self.written = data, step, bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # no readinto: exercises the read() path
        chunk, self.data = self.data[: min(size, self.step)], self.data[min(size, self.step) :]
        return chunk

    readinto = None

    def write(self, data) -> int:
        accepted = bytes(data[: self.step - 2])
        self.written += accepted
        return len(accepted)


def test_short_reads_and_short_writes(plaintext: bytes):
    sealed = Trickle()
    encrypt_stream(Trickle(plaintext), sealed, KEY, RECORD_ID, VERSION, segment_size=SEGMENT)
    opened = Trickle()
    decrypt_stream(Trickle(bytes(sealed.written)), opened, KEY, RECORD_ID, VERSION)
    assert bytes(opened.written) == plaintext


def test_progress_reports_plaintext_bytes(plaintext: bytes, ciphertext: bytes):
    encrypted, decrypted = [], []
    encrypt_stream(io.BytesIO(plaintext), io.BytesIO(), KEY, RECORD_ID, VERSION, segment_size=SEGMENT,
                   progress=encrypted.append)
    decrypt_stream(io.BytesIO(ciphertext), io.BytesIO(), KEY, RECORD_ID, VERSION, progress=decrypted.append)
    assert encrypted == decrypted == [SEGMENT, SEGMENT, SEGMENT, 23]


def test_length_functions():
    assert ciphertext_length(0, SEGMENT) == HEADER_SIZE + 16
    assert ciphertext_length(SEGMENT, SEGMENT) == HEADER_SIZE + SEALED
    assert ciphertext_length(SEGMENT + 1, SEGMENT) == HEADER_SIZE + SEALED + 17
    assert ciphertext_length(2**31, DEFAULT_SEGMENT_SIZE) == HEADER_SIZE + 2**31 + 2048 * 16
    for impossible in (0, HEADER_SIZE, HEADER_SIZE + 15, HEADER_SIZE + SEALED + 1, HEADER_SIZE + SEALED + 15):
        with pytest.raises(FormatError, match=f"no plaintext encrypts to {impossible} bytes"):
            plaintext_length(impossible, SEGMENT)
    with pytest.raises(ValueError, match="plaintext_length must be >= 0"):
        ciphertext_length(-1)
    with pytest.raises(ValueError, match="segment size must be 64 to"):
        ciphertext_length(10, 63)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        pytest.param({"data_key": bytes(16)}, ValueError, "data_key must be 32 bytes", id="short-key"),
        pytest.param({"data_key": "k" * 32}, ValueError, "data_key must be 32 bytes", id="str-key"),
        pytest.param({"record_id": bytes(31)}, ValueError, "bytes32", id="short-record-id"),
        pytest.param({"record_id": "0x" + "00" * 32}, TypeError, "record_id must be bytes", id="hex-record-id"),
        pytest.param({"record_version": -1}, ValueError, "uint256", id="negative-version"),
        pytest.param({"record_version": 2**256}, ValueError, "uint256", id="version-too-large"),
        pytest.param({"record_version": True}, TypeError, "must be an int", id="bool-version"),
        pytest.param({"segment_size": 63}, ValueError, "segment size", id="segment-too-small"),
        pytest.param({"segment_size": (8 << 20) + 1}, ValueError, "segment size", id="segment-too-large"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message):
    arguments = {"data_key": KEY, "record_id": RECORD_ID, "record_version": VERSION, **kwargs}
    segment_size = arguments.pop("segment_size", SEGMENT)
    out = io.BytesIO()
    with pytest.raises(error, match=message):
        encrypt_stream(io.BytesIO(b"data"), out, segment_size=segment_size, **arguments)
    assert out.getvalue() == b""
    if segment_size == SEGMENT:
        with pytest.raises(error, match=message):
            decrypt_stream(io.BytesIO(encrypt(b"data")), io.BytesIO(), **arguments)


def test_errors_share_one_base():
    assert issubclass(FormatError, CryptoError) and issubclass(IntegrityError, CryptoError)
    assert not issubclass(IntegrityError, FormatError)


def reference_open(ciphertext: bytes, key: bytes, record_id: bytes, version: int) -> bytes:
    """Decrypt by the construction documented in ``offchain.crypto.stream``, with raw AES-GCM."""
    header = ciphertext[:HEADER_SIZE]
    magic, format_version, aead_id, kdf_id, segment_size, salt, prefix = struct.unpack(">4sBBBI32s7s", header[:50])
    assert (magic, format_version, aead_id, kdf_id) == (b"MSEC", 2, 1, 1)
    assert header[50:] == HKDF(hashes.SHA256(), 32, salt, b"MedShare key commitment v2" + header[:50]).derive(key)
    subkey = HKDF(hashes.SHA256(), 32, salt, b"MedShare stream subkey v1" + header).derive(key)
    body = ciphertext[HEADER_SIZE:]
    parts = [body[i : i + segment_size + 16] for i in range(0, len(body), segment_size + 16)]
    plaintext = b""
    for index, part in enumerate(parts):
        position = struct.pack(">IB", index, index == len(parts) - 1)
        aad = header + record_id + version.to_bytes(32, "big") + position
        plaintext += AESGCM(subkey).decrypt(prefix + position, part, aad)
    return plaintext


def test_format_is_the_documented_construction(plaintext: bytes, ciphertext: bytes):
    assert reference_open(ciphertext, KEY, RECORD_ID, VERSION) == plaintext
    empty = encrypt(b"")
    assert reference_open(empty, KEY, RECORD_ID, VERSION) == b""
    full = os.urandom(2 * SEGMENT)
    assert reference_open(encrypt(full), KEY, RECORD_ID, VERSION) == full


def reference_seal_v1(plaintext: bytes, key: bytes, record_id: bytes, version: int) -> bytes:
    """A format-1 stream (no key commitment), as builds before the commitment wrote them."""
    salt, prefix = os.urandom(32), os.urandom(7)
    header = struct.pack(">4sBBBI32s7s", b"MSEC", 1, 1, 1, SEGMENT, salt, prefix)
    subkey = HKDF(hashes.SHA256(), 32, salt, b"MedShare stream subkey v1" + header).derive(key)
    parts = [plaintext[i : i + SEGMENT] for i in range(0, len(plaintext), SEGMENT)] or [b""]
    sealed = b""
    for index, part in enumerate(parts):
        position = struct.pack(">IB", index, index == len(parts) - 1)
        aad = header + record_id + version.to_bytes(32, "big") + position
        sealed += AESGCM(subkey).encrypt(prefix + position, part, aad)
    return header + sealed


@pytest.mark.parametrize("size", [0, 10, SEGMENT, 3 * SEGMENT + 5])
def test_format_1_streams_stay_readable_and_their_keys_checkable(size: int):
    data = os.urandom(size)
    legacy = reference_seal_v1(data, KEY, RECORD_ID, VERSION)
    assert decrypt(legacy) == data
    assert verify_data_key(io.BytesIO(legacy), KEY, RECORD_ID, VERSION)
    assert not verify_data_key(io.BytesIO(legacy), new_data_key(), RECORD_ID, VERSION)
    with pytest.raises(IntegrityError, match="segment 0"):
        decrypt(legacy, key=new_data_key())


def test_verify_data_key_reads_only_the_commitment(ciphertext: bytes):
    assert verify_data_key(io.BytesIO(ciphertext[:HEADER_SIZE]), KEY, RECORD_ID, VERSION)
    assert not verify_data_key(io.BytesIO(ciphertext[:HEADER_SIZE]), new_data_key(), RECORD_ID, VERSION)
    with pytest.raises(FormatError, match="shorter than the stream header"):
        verify_data_key(io.BytesIO(ciphertext[: HEADER_SIZE - 1]), KEY, RECORD_ID, VERSION)
