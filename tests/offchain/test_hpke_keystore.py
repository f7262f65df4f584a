"""Keystores holding either kind of key (X25519, MLKEM768-X25519), side by side."""

import json
from pathlib import Path

import pytest

from offchain.crypto import KeySuite, KeystoreError, Keystore, KeyWrapError, new_data_key, wrap_data_key

PASSPHRASE = "hybrid keys"
RECORD_ID = bytes(range(32))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, Keystore]:
    """Version 1 X25519, 2 hybrid (rotated to it), 3 hybrid (rotation keeps the current suite)."""
    path = tmp_path_factory.mktemp("keystore") / "keys.json"
    keystore = Keystore.create(path, PASSPHRASE)
    assert keystore.rotate(KeySuite.MLKEM768_X25519) == 2
    assert keystore.rotate() == 3
    return path, keystore


def test_a_hybrid_keystore_from_the_start(tmp_path: Path):
    keystore = Keystore.create(tmp_path / "pq.json", PASSPHRASE, suite=KeySuite.MLKEM768_X25519)
    assert keystore.suite() is KeySuite.MLKEM768_X25519
    assert len(keystore.public_key()) == 1216
    reopened = Keystore.open(tmp_path / "pq.json", PASSPHRASE)
    assert reopened.public_key() == keystore.public_key()
    assert Keystore.read_public_keys(tmp_path / "pq.json") == {1: keystore.public_key()}


def test_suites_and_keys_survive_reopening(mixed):
    path, keystore = mixed
    reopened = Keystore.open(path, PASSPHRASE)
    assert [reopened.suite(v) for v in (1, 2, 3)] == [KeySuite.X25519, KeySuite.MLKEM768_X25519, KeySuite.MLKEM768_X25519]
    assert [len(reopened.public_key(v)) for v in (1, 2, 3)] == [32, 1216, 1216]
    assert all(reopened.public_key(v) == keystore.public_key(v) for v in (1, 2, 3))
    document = json.loads(path.read_text())
    assert document["key_suites"] == {"2": "mlkem768-x25519", "3": "mlkem768-x25519"}


def test_the_keystore_unwraps_with_the_kind_of_key_the_wrap_names(mixed):
    _, keystore = mixed
    data_key = new_data_key()
    for version in keystore.versions:
        wrapped = wrap_data_key(data_key, keystore.public_key(version), version, RECORD_ID, 1, keystore.suite(version))
        assert keystore.unwrap_data_key(wrapped, RECORD_ID, 1) == data_key
    # An X25519 wrap naming version 2, a hybrid key: refused by name, not by a failed tag.
    x25519_for_2 = wrap_data_key(data_key, keystore.public_key(1), 2, RECORD_ID, 1)
    with pytest.raises(KeyWrapError, match="wrapped for a x25519 key, not this mlkem768-x25519 key"):
        keystore.unwrap_data_key(x25519_for_2, RECORD_ID, 1)


def test_private_key_is_for_x25519_versions_only(mixed):
    _, keystore = mixed
    assert keystore.private_key(1).private_bytes_raw() == keystore.recipient_key(1).private_bytes_raw()
    with pytest.raises(KeystoreError, match="key version 2 is a mlkem768-x25519 key"):
        keystore.private_key(2)


def test_no_private_bytes_in_the_file_or_repr(mixed):
    path, keystore = mixed
    text = path.read_text() + repr(keystore) + repr(keystore.recipient_key(2))
    for version in keystore.versions:
        assert keystore.recipient_key(version).private_bytes_raw().hex() not in text


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param(lambda d: d["key_suites"].update({"2": "kyber"}), "key_suites must map", id="unknown-suite"),
        pytest.param(lambda d: d.update(key_suites=["x"]), "key_suites must map", id="not-a-map"),
        pytest.param(lambda d: d["key_suites"].update({"9": "x25519"}), "names a version with no key", id="no-such"),
        pytest.param(lambda d: d["key_suites"].pop("2"), "public_keys must map", id="suite-dropped"),
    ],
)
def test_malformed_suites_are_refused(mixed, tmp_path: Path, change, message):
    path, _ = mixed
    document = json.loads(path.read_text())
    change(document)
    copy = tmp_path / "bad.json"
    copy.write_text(json.dumps(document))
    copy.chmod(0o600)
    with pytest.raises(KeystoreError, match=message):
        Keystore.open(copy, PASSPHRASE)


def test_a_relabelled_suite_does_not_unlock(mixed, tmp_path: Path):
    path, _ = mixed
    document = json.loads(path.read_text())
    # Same public key size is impossible across suites, so relabel and swap the key too.
    document["key_suites"].pop("3")
    document["public_keys"]["3"] = document["public_keys"]["1"]
    copy = tmp_path / "relabelled.json"
    copy.write_text(json.dumps(document))
    copy.chmod(0o600)
    with pytest.raises(KeystoreError, match="wrong passphrase, or the file was modified"):
        Keystore.open(copy, PASSPHRASE)
