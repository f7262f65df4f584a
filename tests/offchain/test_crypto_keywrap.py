"""Wrapping data keys for readers: X25519 + HKDF-SHA256 + AES-256-GCM."""

import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from offchain.crypto import (
    WRAPPED_KEY_SIZE,
    CryptoError,
    KeyWrapError,
    new_data_key,
    raw_public_key,
    unwrap_data_key,
    wrap_data_key,
    wrapped_key_recipient_version,
)

RECORD_ID = bytes.fromhex("ab" * 32)
VERSION = 3
KEY_VERSION = 2


@pytest.fixture(scope="module")
def reader() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture(scope="module")
def data_key() -> bytes:
    return new_data_key()


@pytest.fixture(scope="module")
def wrapped(reader: X25519PrivateKey, data_key: bytes) -> bytes:
    return wrap_data_key(data_key, raw_public_key(reader.public_key()), KEY_VERSION, RECORD_ID, VERSION)


def test_round_trip(reader, data_key, wrapped):
    assert len(wrapped) == WRAPPED_KEY_SIZE == 89
    assert wrapped[:4] == b"MSKW"
    assert data_key not in wrapped
    assert wrapped_key_recipient_version(wrapped) == KEY_VERSION
    assert unwrap_data_key(wrapped, reader, RECORD_ID, VERSION) == data_key


def test_each_wrap_uses_a_fresh_ephemeral_key(reader, data_key, wrapped):
    again = wrap_data_key(data_key, raw_public_key(reader.public_key()), KEY_VERSION, RECORD_ID, VERSION)
    assert again[9:41] != wrapped[9:41]
    assert again[41:] != wrapped[41:]
    assert unwrap_data_key(again, reader, RECORD_ID, VERSION) == data_key


def test_wrong_recipient_is_refused(wrapped):
    with pytest.raises(KeyWrapError, match="wrapped for another private key or another record id or version"):
        unwrap_data_key(wrapped, X25519PrivateKey.generate(), RECORD_ID, VERSION)


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


def test_every_flipped_bit_is_detected(reader, wrapped):
    for position in range(len(wrapped)):
        for bit in range(8):
            tampered = bytearray(wrapped)
            tampered[position] ^= 1 << bit
            with pytest.raises(KeyWrapError):
                unwrap_data_key(bytes(tampered), reader, RECORD_ID, VERSION)


def test_recipient_key_version_is_authenticated(reader, wrapped):
    relabelled = wrapped[:5] + struct.pack(">I", KEY_VERSION + 1) + wrapped[9:]
    assert wrapped_key_recipient_version(relabelled) == KEY_VERSION + 1
    with pytest.raises(KeyWrapError, match="wrapped for recipient key version 3"):
        unwrap_data_key(relabelled, reader, RECORD_ID, VERSION)


@pytest.mark.parametrize(
    "mutate, message",
    [
        pytest.param(lambda w: w[:-1], "88 bytes, expected 89", id="truncated"),
        pytest.param(lambda w: w + b"\x00", "90 bytes, expected 89", id="extended"),
        pytest.param(lambda w: b"", "0 bytes", id="empty"),
        pytest.param(lambda w: b"XXKW" + w[4:], "wrong magic", id="magic"),
        pytest.param(
            lambda w: w[:4] + b"\x02" + w[5:], "unsupported wrapped key format version 2", id="format-version"
        ),
        pytest.param(lambda w: w[:5] + bytes(4) + w[9:], "recipient key version 0", id="key-version-0"),
        pytest.param(lambda w: w[:9] + bytes(32) + w[41:], "low-order point", id="ephemeral-low-order"),
    ],
)
def test_malformed_blobs_are_refused(reader, wrapped, mutate, message):
    with pytest.raises(KeyWrapError, match=message):
        unwrap_data_key(mutate(wrapped), reader, RECORD_ID, VERSION)


@pytest.mark.parametrize(
    "public_key, message",
    [
        pytest.param(bytes(31), "32 raw bytes", id="short"),
        pytest.param("00" * 32, "32 raw bytes", id="hex-string"),
        pytest.param(bytes(32), "low-order point", id="zero-point"),
        pytest.param((1).to_bytes(32, "little"), "low-order point", id="order-one-point"),
    ],
)
def test_bad_recipient_public_keys_are_refused(data_key, public_key, message):
    with pytest.raises(KeyWrapError, match=message):
        wrap_data_key(data_key, public_key, KEY_VERSION, RECORD_ID, VERSION)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        pytest.param({"data_key": bytes(31)}, ValueError, "data_key must be 32 bytes", id="short-data-key"),
        pytest.param({"recipient_key_version": 0}, ValueError, "key version must be 1 to", id="key-version-0"),
        pytest.param({"recipient_key_version": 2**32}, ValueError, "key version must be 1 to", id="key-version-big"),
        pytest.param({"record_id": bytes(33)}, ValueError, "bytes32", id="long-record-id"),
        pytest.param({"record_version": -1}, ValueError, "uint256", id="negative-version"),
    ],
)
def test_bad_wrap_arguments_are_refused(reader, data_key, kwargs, error, message):
    arguments = {
        "data_key": data_key,
        "recipient_public_key": raw_public_key(reader.public_key()),
        "recipient_key_version": KEY_VERSION,
        "record_id": RECORD_ID,
        "record_version": VERSION,
        **kwargs,
    }
    with pytest.raises(error, match=message):
        wrap_data_key(**arguments)


def test_unwrap_needs_a_private_key_object(wrapped):
    with pytest.raises(TypeError, match="X25519PrivateKey"):
        unwrap_data_key(wrapped, bytes(32), RECORD_ID, VERSION)


def test_errors_do_not_reveal_keys(reader, data_key, wrapped):
    with pytest.raises(KeyWrapError) as caught:
        unwrap_data_key(wrapped, reader, RECORD_ID, VERSION + 1)
    private = reader.private_bytes_raw()
    text = str(caught.value) + repr(caught.value)
    for secret in (private, data_key):
        assert secret.hex() not in text and repr(secret) not in text
    assert issubclass(KeyWrapError, CryptoError)


def test_format_is_the_documented_construction(reader, data_key, wrapped):
    """Unwrap by the construction documented in ``offchain.crypto.keywrap``, with raw primitives."""
    magic, format_version, key_version, ephemeral = struct.unpack(">4sBI32s", wrapped[:41])
    assert (magic, format_version, key_version) == (b"MSKW", 1, KEY_VERSION)
    shared = reader.exchange(X25519PublicKey.from_public_bytes(ephemeral))
    context = wrapped[:41] + raw_public_key(reader.public_key()) + RECORD_ID + VERSION.to_bytes(32, "big")
    okm = HKDF(hashes.SHA256(), 44, None, b"MedShare key wrap v1" + context).derive(shared)
    assert AESGCM(okm[:32]).decrypt(okm[32:], wrapped[41:], context) == data_key
