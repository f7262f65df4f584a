"""Wrapping data keys for readers: HPKE base mode in both suites, and the documented layout."""

import struct

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from offchain.crypto import (
    MAX_WRAPPED_KEY_SIZE,
    CryptoError,
    KeySuite,
    KeyWrapError,
    RecipientKey,
    new_data_key,
    parse_wrapped_key,
    raw_public_key,
    unwrap_data_key,
    wrap_data_key,
    wrapped_key_recipient_version,
)

RECORD_ID = bytes.fromhex("ab" * 32)
VERSION = 3
KEY_VERSION = 2
HEADER = 15
SIZES = {KeySuite.X25519: (32, 32, 95), KeySuite.MLKEM768_X25519: (1216, 1120, 1183)}  # pk, enc, wrapped


@pytest.fixture(scope="module", params=list(KeySuite), ids=lambda s: s.value)
def suite(request) -> KeySuite:
    return request.param


@pytest.fixture(scope="module")
def reader(suite) -> RecipientKey:
    return RecipientKey.generate(suite)


@pytest.fixture(scope="module")
def data_key() -> bytes:
    return new_data_key()


@pytest.fixture(scope="module")
def wrapped(reader, data_key) -> bytes:
    return wrap_data_key(data_key, reader.public_key, KEY_VERSION, RECORD_ID, VERSION, reader.suite)


def test_round_trip(suite, reader, data_key, wrapped):
    public_size, enc_size, wrapped_size = SIZES[suite]
    assert len(reader.public_key) == suite.public_key_size == public_size
    assert len(wrapped) == suite.wrapped_key_size == wrapped_size <= MAX_WRAPPED_KEY_SIZE == 1183
    assert wrapped[:5] == b"MSKW\x02"
    assert data_key not in wrapped
    assert wrapped_key_recipient_version(wrapped) == KEY_VERSION
    assert parse_wrapped_key(wrapped).suite is suite
    assert unwrap_data_key(wrapped, reader, RECORD_ID, VERSION) == data_key


def test_the_wrap_carries_its_suite_ids(suite, wrapped):
    assert struct.unpack(">HHH", wrapped[5:11]) == (suite.kem_id, 0x0001, 0x0002)
    assert {KeySuite.X25519.kem_id, KeySuite.MLKEM768_X25519.kem_id} == {0x0020, 0x647A}


def test_each_wrap_uses_a_fresh_encapsulation(suite, reader, data_key, wrapped):
    again = wrap_data_key(data_key, reader.public_key, KEY_VERSION, RECORD_ID, VERSION, suite)
    enc_end = HEADER + SIZES[suite][1]
    assert again[HEADER:enc_end] != wrapped[HEADER:enc_end]
    assert again[enc_end:] != wrapped[enc_end:]
    assert unwrap_data_key(again, reader, RECORD_ID, VERSION) == data_key


def test_wrong_recipient_is_refused(suite, wrapped):
    with pytest.raises(KeyWrapError, match="wrapped for another private key or another record id or version"):
        unwrap_data_key(wrapped, RecipientKey.generate(suite), RECORD_ID, VERSION)


def test_a_key_of_the_other_suite_is_refused_by_name(suite, wrapped):
    other = next(s for s in KeySuite if s is not suite)
    with pytest.raises(KeyWrapError, match=f"wrapped for a {suite.value} key, not this {other.value} key"):
        unwrap_data_key(wrapped, RecipientKey.generate(other), RECORD_ID, VERSION)


@pytest.mark.parametrize(
    "record_id, version",
    [
        pytest.param(bytes(32), VERSION, id="other-record"),
        pytest.param(RECORD_ID, VERSION + 1, id="next-version"),
        pytest.param(RECORD_ID, VERSION + 2**128, id="version-high-bits"),
    ],
)
def test_wrong_record_or_version_is_refused(reader, wrapped, record_id, version):
    with pytest.raises(KeyWrapError, match="cannot unwrap the data key"):
        unwrap_data_key(wrapped, reader, record_id, version)


def test_every_flipped_bit_is_detected(suite, reader, wrapped):
    # The hybrid's 1,120-byte enc: every byte, one bit each (every bit of the X25519 wrap).
    bits = range(8) if suite is KeySuite.X25519 else (0,)
    for position in range(len(wrapped)):
        for bit in bits:
            tampered = bytearray(wrapped)
            tampered[position] ^= 1 << bit
            with pytest.raises(KeyWrapError):
                unwrap_data_key(bytes(tampered), reader, RECORD_ID, VERSION)


def test_recipient_key_version_is_authenticated(reader, wrapped):
    relabelled = wrapped[:11] + struct.pack(">I", KEY_VERSION + 1) + wrapped[15:]
    assert wrapped_key_recipient_version(relabelled) == KEY_VERSION + 1
    with pytest.raises(KeyWrapError, match="wrapped for recipient key version 3"):
        unwrap_data_key(relabelled, reader, RECORD_ID, VERSION)


@pytest.mark.parametrize(
    "mutate, message",
    [
        pytest.param(lambda w: w[:-1], "bytes, expected", id="truncated"),
        pytest.param(lambda w: w + b"\x00", "bytes, expected", id="extended"),
        pytest.param(lambda w: b"", "0 bytes", id="empty"),
        pytest.param(lambda w: w[:12], "12 bytes", id="header-cut"),
        pytest.param(lambda w: b"XXKW" + w[4:], "wrong magic", id="magic"),
        pytest.param(lambda w: w[:4] + b"\x03" + w[5:], "unsupported wrapped key format version 3", id="format-3"),
        pytest.param(lambda w: w[:4] + b"\x01" + w[5:], "expected 89", id="format-1-size"),
        pytest.param(lambda w: w[:5] + b"\x00\x10" + w[7:], "unsupported HPKE KEM id 0x0010", id="kem-p256"),
        pytest.param(lambda w: w[:7] + b"\x00\x02" + w[9:], "KDF 0x0002", id="kdf-sha384"),
        pytest.param(lambda w: w[:9] + b"\x00\x03" + w[11:], "AEAD 0x0003", id="aead-chacha"),
        pytest.param(lambda w: w[:11] + bytes(4) + w[15:], "recipient key version 0", id="key-version-0"),
    ],
)
def test_malformed_blobs_are_refused(reader, wrapped, mutate, message):
    with pytest.raises(KeyWrapError, match=message):
        unwrap_data_key(mutate(wrapped), reader, RECORD_ID, VERSION)


@pytest.mark.parametrize(
    "suite_, public_key, message",
    [
        pytest.param(KeySuite.X25519, bytes(31), "must be 32 raw bytes", id="short"),
        pytest.param(KeySuite.X25519, "00" * 32, "must be 32 raw bytes", id="hex-string"),
        pytest.param(KeySuite.X25519, bytes(32), "low-order point", id="zero-point"),
        pytest.param(KeySuite.X25519, (1).to_bytes(32, "little"), "low-order point", id="order-one-point"),
        pytest.param(KeySuite.MLKEM768_X25519, bytes(32), "must be 1216 raw bytes", id="x25519-key-as-hybrid"),
        pytest.param(KeySuite.MLKEM768_X25519, b"\xff" * 1216, "invalid ML-KEM-768 public key", id="mlkem-out-of-range"),
        pytest.param(KeySuite.X25519, bytes(1216), "must be 32 raw bytes", id="hybrid-key-as-x25519"),
    ],
)
def test_bad_recipient_public_keys_are_refused(data_key, suite_, public_key, message):
    with pytest.raises(KeyWrapError, match=message):
        wrap_data_key(data_key, public_key, KEY_VERSION, RECORD_ID, VERSION, suite_)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        pytest.param({"data_key": bytes(31)}, ValueError, "data_key must be 32 bytes", id="short-data-key"),
        pytest.param({"recipient_key_version": 0}, ValueError, "key version must be 1 to", id="key-version-0"),
        pytest.param({"recipient_key_version": 2**32}, ValueError, "key version must be 1 to", id="key-version-big"),
        pytest.param({"record_id": bytes(33)}, ValueError, "bytes32", id="long-record-id"),
        pytest.param({"record_version": -1}, ValueError, "uint256", id="negative-version"),
        pytest.param({"suite": "x25519"}, TypeError, "KeySuite", id="suite-by-name"),
    ],
)
def test_bad_wrap_arguments_are_refused(reader, data_key, kwargs, error, message):
    arguments = {
        "data_key": data_key,
        "recipient_public_key": reader.public_key,
        "recipient_key_version": KEY_VERSION,
        "record_id": RECORD_ID,
        "record_version": VERSION,
        "suite": reader.suite,
        **kwargs,
    }
    with pytest.raises(error, match=message):
        wrap_data_key(**arguments)


def test_unwrap_needs_a_private_key_object(wrapped):
    with pytest.raises(TypeError, match="RecipientKey or an X25519PrivateKey"):
        unwrap_data_key(wrapped, bytes(32), RECORD_ID, VERSION)


def test_an_x25519_private_key_object_still_unwraps(data_key):
    private = X25519PrivateKey.generate()
    wrapped = wrap_data_key(data_key, raw_public_key(private.public_key()), 1, RECORD_ID, VERSION)
    assert parse_wrapped_key(wrapped).suite is KeySuite.X25519
    assert unwrap_data_key(wrapped, private, RECORD_ID, VERSION) == data_key


def test_recipient_keys_round_trip_through_their_32_private_bytes(reader):
    again = RecipientKey(reader.suite, reader.private_bytes_raw())
    assert again.public_key == reader.public_key
    assert len(reader.private_bytes_raw()) == 32
    assert reader.private_bytes_raw().hex() not in repr(reader)
    with pytest.raises(ValueError, match="32 raw bytes"):
        RecipientKey(reader.suite, bytes(31))


def test_errors_do_not_reveal_keys(reader, data_key, wrapped):
    with pytest.raises(KeyWrapError) as caught:
        unwrap_data_key(wrapped, reader, RECORD_ID, VERSION + 1)
    text = str(caught.value) + repr(caught.value)
    for secret in (reader.private_bytes_raw(), data_key):
        assert secret.hex() not in text and repr(secret) not in text
    assert issubclass(KeyWrapError, CryptoError)


def test_format_is_the_documented_construction(suite, reader, data_key, wrapped):
    """Open by the layout and ``info`` documented in README, with cryptography's HPKE directly."""
    magic, format_version, kem, kdf, aead, key_version = struct.unpack(">4sBHHHI", wrapped[:HEADER])
    assert (magic, format_version, kem, kdf, aead, key_version) == (b"MSKW", 2, suite.kem_id, 1, 2, KEY_VERSION)
    info = b"MedShare key wrap v2" + wrapped[:HEADER] + reader.public_key + RECORD_ID + VERSION.to_bytes(32, "big")
    kem_ = {KeySuite.X25519: hpke.KEM.X25519, KeySuite.MLKEM768_X25519: hpke.KEM.MLKEM768_X25519}[suite]
    opened = hpke.Suite(kem_, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM).decrypt(
        wrapped[HEADER:], reader.hpke_private_key, info=info
    )
    assert opened == data_key
