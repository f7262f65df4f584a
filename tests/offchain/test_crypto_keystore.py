"""The passphrase-sealed keystore of a member's X25519 private keys."""

import base64
import errno
import json
import logging
import multiprocessing
import os
from pathlib import Path

import pytest

import offchain.crypto.keystore as keystore_module
from offchain.crypto import (
    CryptoError,
    KeystoreError,
    KeySuite,
    KeyWrapError,
    Keystore,
    RecipientKey,
    new_data_key,
    raw_public_key,
    wrap_data_key,
)
from offchain.crypto.atomic import atomic_write

PASSPHRASE = "correct horse battery staple"
RECORD_ID = bytes(range(32))


@pytest.fixture
def keystore_path(tmp_path: Path) -> Path:
    return tmp_path / "member.keystore.json"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict]:
    """A keystore file with two key versions, and its JSON document."""
    path = tmp_path_factory.mktemp("keystore") / "keys.json"
    keystore = Keystore.create(path, PASSPHRASE)
    keystore.rotate()
    return path, json.loads(path.read_text())


def secrets_of(keystore: Keystore) -> list[str]:
    """Every textual form a private key could leak in."""
    forms = []
    for version in keystore.versions:
        raw = keystore.private_key(version).private_bytes_raw()
        forms += [raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), repr(raw)[2:-1]]
    return forms


def tampered_copy(saved, tmp_path: Path, change) -> Path:
    path, document = saved
    document = json.loads(json.dumps(document))
    change(document)
    copy = tmp_path / "tampered.json"
    copy.write_text(json.dumps(document))
    copy.chmod(0o600)
    return copy


def test_create_and_open(keystore_path: Path):
    created = Keystore.create(keystore_path, PASSPHRASE)
    assert created.versions == (1,) and created.current_version == 1
    assert keystore_path.stat().st_mode & 0o777 == 0o600
    opened = Keystore.open(keystore_path, PASSPHRASE)
    assert opened.versions == (1,)
    assert opened.private_key(1).private_bytes_raw() == created.private_key(1).private_bytes_raw()
    assert opened.public_key() == created.public_key() == raw_public_key(created.private_key().public_key())
    assert Keystore.read_public_keys(keystore_path) == {1: created.public_key()}
    assert os.listdir(keystore_path.parent) == [keystore_path.name]


def test_file_holds_no_private_key_in_clear(keystore_path: Path):
    keystore = Keystore.create(keystore_path, PASSPHRASE)
    text = keystore_path.read_text()
    for secret in secrets_of(keystore):
        assert secret not in text
    assert PASSPHRASE not in text
    document = json.loads(text)
    assert document["kdf"] == {**document["kdf"], "name": "scrypt", "log2_n": 17, "r": 8, "p": 1}
    assert document["public_keys"] == {"1": keystore.public_key().hex()}


def test_rotate_adds_a_current_version_and_keeps_old_ones(keystore_path: Path):
    keystore = Keystore.create(keystore_path, PASSPHRASE)
    first = keystore.public_key()
    assert keystore.rotate() == 2
    assert keystore.rotate() == 3
    assert keystore.current_version == 3 and keystore.versions == (1, 2, 3)
    assert len({keystore.public_key(v) for v in keystore.versions}) == 3
    reopened = Keystore.open(keystore_path, PASSPHRASE)
    assert reopened.versions == (1, 2, 3)
    assert reopened.public_key(1) == first
    assert reopened.public_key() == keystore.public_key(3)
    assert keystore_path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(keystore_path.parent) == [keystore_path.name]


def test_unwrap_picks_the_key_version_the_blob_names(saved):
    path, _ = saved
    keystore = Keystore.open(path, PASSPHRASE)
    data_key = new_data_key()
    for version in keystore.versions:
        wrapped = wrap_data_key(data_key, keystore.public_key(version), version, RECORD_ID, 1)
        assert keystore.unwrap_data_key(wrapped, RECORD_ID, 1) == data_key
    unknown = wrap_data_key(data_key, keystore.public_key(), 9, RECORD_ID, 1)
    with pytest.raises(KeyWrapError, match="wrapped for key version 9, but keystore .* holds versions 1, 2"):
        keystore.unwrap_data_key(unknown, RECORD_ID, 1)
    mislabelled = wrap_data_key(data_key, keystore.public_key(2), 1, RECORD_ID, 1)
    with pytest.raises(KeyWrapError, match="cannot unwrap"):
        keystore.unwrap_data_key(mislabelled, RECORD_ID, 1)


def test_wrong_passphrase_is_refused_without_echo(saved, caplog):
    path, _ = saved
    wrong = "correct horse battery stapler"
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(KeystoreError, match="wrong passphrase, or the file was modified") as caught:
            Keystore.open(path, wrong)
    text = str(caught.value) + repr(caught.value)
    assert wrong not in text and PASSPHRASE not in text
    for secret in secrets_of(Keystore.open(path, PASSPHRASE)):
        assert secret not in text and secret not in caplog.text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_passphrase_is_normalised(keystore_path: Path):
    Keystore.create(keystore_path, "caf\u00e9")  # precomposed é
    assert Keystore.open(keystore_path, "cafe\u0301").versions == (1,)  # e + combining accent


def test_private_keys_never_in_repr_or_logs(saved, caplog):
    path, _ = saved
    with caplog.at_level(logging.DEBUG):
        keystore = Keystore.open(path, PASSPHRASE)
        shown = repr(keystore) + str(keystore) + repr(keystore.private_key())
        with pytest.raises(KeystoreError) as caught:
            keystore.private_key(7)
    assert shown.startswith(f"Keystore(path={str(path)!r}, versions=[1, 2])")
    assert "holds no key version 7 (it holds versions 1, 2)" in str(caught.value)
    for secret in secrets_of(keystore):
        assert secret not in shown and secret not in str(caught.value) and secret not in caplog.text


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["public_keys"].update({"1": d["public_keys"]["2"]}), id="public-key-swapped"),
        pytest.param(lambda d: d["public_keys"].pop("2"), id="version-dropped"),
        pytest.param(lambda d: d["kdf"].update(log2_n=16), id="kdf-cost-changed"),
        pytest.param(lambda d: d["kdf"].update(salt=base64.b64encode(bytes(16)).decode()), id="salt-changed"),
        pytest.param(lambda d: d["cipher"].update(nonce=base64.b64encode(bytes(12)).decode()), id="nonce-changed"),
        pytest.param(
            lambda d: d.update(ciphertext=base64.b64encode(bytes(len(base64.b64decode(d["ciphertext"])))).decode()),
            id="ciphertext-changed",
        ),
        pytest.param(lambda d: d.update(extra="field"), id="field-added"),
    ],
)
def test_modified_files_do_not_unlock(saved, tmp_path: Path, change):
    copy = tampered_copy(saved, tmp_path, change)
    with pytest.raises(KeystoreError, match="wrong passphrase, or the file was modified"):
        Keystore.open(copy, PASSPHRASE)


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param(lambda d: d.update(format="other"), "format is not 'medshare-keystore'", id="format"),
        pytest.param(lambda d: d.update(format_version=3), "unsupported format version 3", id="format-version"),
        pytest.param(lambda d: d.update(format_version=2), "token_key must name", id="token-version-without-key"),
        pytest.param(lambda d: d["kdf"].update(name="pbkdf2"), "kdf is not scrypt", id="kdf-name"),
        pytest.param(lambda d: d["kdf"].update(log2_n=14), "log2_n must be 15 to 20", id="kdf-too-weak"),
        pytest.param(lambda d: d["kdf"].update(log2_n=30), "log2_n must be 15 to 20", id="kdf-too-costly"),
        pytest.param(lambda d: d["kdf"].update(r=1), "r and p must be 8 and 1", id="kdf-r"),
        pytest.param(lambda d: d["kdf"].update(salt="!!"), "kdf.salt must be base64", id="salt-not-base64"),
        pytest.param(lambda d: d["kdf"].update(salt="AAAA"), "kdf.salt must be base64 of at least 16", id="salt-short"),
        pytest.param(lambda d: d["cipher"].update(name="chacha20"), "cipher is not aes-256-gcm", id="cipher"),
        pytest.param(lambda d: d["cipher"].update(nonce="AAAA"), "cipher.nonce must be base64 of 12", id="nonce-short"),
        pytest.param(lambda d: d.pop("ciphertext"), "ciphertext must be base64", id="no-ciphertext"),
        pytest.param(lambda d: d.update(public_keys={}), "public_keys is missing or empty", id="no-public-keys"),
        pytest.param(lambda d: d["public_keys"].update({"x": "00"}), "public_keys must map", id="bad-version"),
        pytest.param(lambda d: d["public_keys"].update({"0": "00" * 32}), "public_keys must map", id="version-0"),
        pytest.param(lambda d: d["public_keys"].update({"1": "00" * 31}), "public_keys must map", id="short-key"),
        pytest.param(lambda d: d.clear(), "format is not", id="empty-object"),
    ],
)
def test_malformed_files_are_refused(saved, tmp_path: Path, change, message):
    copy = tampered_copy(saved, tmp_path, change)
    with pytest.raises(KeystoreError, match=message):
        Keystore.open(copy, PASSPHRASE)


def test_unreadable_files_are_refused(tmp_path: Path):
    missing = tmp_path / "missing.json"
    with pytest.raises(KeystoreError, match="does not exist"):
        Keystore.open(missing, PASSPHRASE)
    with pytest.raises(KeystoreError, match="does not exist"):
        Keystore.read_public_keys(missing)
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff{not json")
    garbage.chmod(0o600)
    with pytest.raises(KeystoreError, match="is not valid JSON"):
        Keystore.open(garbage, PASSPHRASE)
    array = tmp_path / "array.json"
    array.write_text("[]")
    array.chmod(0o600)
    with pytest.raises(KeystoreError, match="not a JSON object"):
        Keystore.open(array, PASSPHRASE)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_loose_permissions_are_refused(saved, tmp_path: Path, mode: int):
    copy = tampered_copy(saved, tmp_path, lambda d: None)
    copy.chmod(mode)
    with pytest.raises(KeystoreError, match=f"accessible to group or others \\(mode {mode:04o}\\); run: chmod 600"):
        Keystore.open(copy, PASSPHRASE)
    copy.chmod(0o600)
    assert Keystore.open(copy, PASSPHRASE).versions == (1, 2)


def test_create_refuses_to_overwrite_and_weak_settings(saved, keystore_path: Path):
    path, _ = saved
    before = path.read_bytes()
    with pytest.raises(KeystoreError, match="already exists; refusing to overwrite"):
        Keystore.create(path, PASSPHRASE)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="scrypt_log2_n must be 17 to 20"):
        Keystore.create(keystore_path, PASSPHRASE, scrypt_log2_n=16)
    with pytest.raises(KeystoreError, match="passphrase is empty"):
        Keystore.create(keystore_path, "")
    with pytest.raises(TypeError, match="passphrase must be a str"):
        Keystore.create(keystore_path, PASSPHRASE.encode())
    assert not keystore_path.exists()


def test_stronger_scrypt_cost_is_recorded_and_used(keystore_path: Path):
    Keystore.create(keystore_path, PASSPHRASE, scrypt_log2_n=18)
    assert json.loads(keystore_path.read_text())["kdf"]["log2_n"] == 18
    assert Keystore.open(keystore_path, PASSPHRASE).versions == (1,)


def test_failed_save_leaves_the_file_and_the_keystore_unchanged(keystore_path: Path, monkeypatch):
    keystore = Keystore.create(keystore_path, PASSPHRASE)
    before = keystore_path.read_bytes()

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)  # the rename is the last step of the atomic write
    with pytest.raises(KeystoreError, match="cannot write keystore .*: No space left on device"):
        keystore.rotate()
    monkeypatch.undo()
    assert keystore.versions == (1,)
    assert keystore_path.read_bytes() == before
    assert os.listdir(keystore_path.parent) == [keystore_path.name]
    assert keystore.rotate() == 2
    assert Keystore.open(keystore_path, PASSPHRASE).versions == (1, 2)


def test_errors_share_one_base():
    assert issubclass(KeystoreError, CryptoError)


def test_atomic_write_without_overwrite_never_clobbers(tmp_path: Path):
    target = tmp_path / "keys.json"
    with atomic_write(target, overwrite=False) as file:
        file.write(b"first")
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as file:
            file.write(b"second")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as file:
            file.write(b"third")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["keys.json"]


def write_old_keystore(path: Path, log2_n: int) -> Keystore:
    """A keystore file as earlier versions wrote it, at a cost below today's minimum."""
    old = Keystore(path, keystore_module._PassphraseSealer(PASSPHRASE, log2_n).new_seal(), {}, {})
    old._save({1: RecipientKey.generate(KeySuite.X25519)}, overwrite=False)
    return old


@pytest.mark.parametrize("log2_n", [15, 16])
def test_older_cheaper_keystores_open_and_are_resealed_at_today_s_cost(keystore_path: Path, log2_n: int):
    old = write_old_keystore(keystore_path, log2_n)
    opened = Keystore.open(keystore_path, PASSPHRASE)
    assert opened.public_key(1) == old.public_key(1)
    assert json.loads(keystore_path.read_text())["kdf"]["log2_n"] == log2_n  # opening writes nothing
    assert opened.rotate() == 2
    document = json.loads(keystore_path.read_text())
    assert document["kdf"]["log2_n"] == keystore_module.MIN_NEW_SCRYPT_LOG2_N == 17
    assert document["kdf"]["salt"] != old._seal.header["kdf"]["salt"]
    reopened = Keystore.open(keystore_path, PASSPHRASE)
    assert reopened.versions == (1, 2) and reopened.public_key(1) == old.public_key(1)


def open_and_rotate(path: str, barrier, results) -> None:
    keystore = Keystore.open(path, PASSPHRASE)
    barrier.wait(timeout=120)  # both hold the same one-key keystore before either rotates
    version = keystore.rotate()
    results.put((version, keystore.public_key(version).hex()))


def test_two_processes_rotating_at_once_lose_no_key(keystore_path: Path):
    Keystore.create(keystore_path, PASSPHRASE)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=open_and_rotate, args=(str(keystore_path), barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    rotated = dict(results.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join()
    assert sorted(rotated) == [2, 3]
    keystore = Keystore.open(keystore_path, PASSPHRASE)
    assert keystore.versions == (1, 2, 3)
    assert {version: keystore.public_key(version).hex() for version in (2, 3)} == rotated
    assert os.listdir(keystore_path.parent) == [keystore_path.name]


def test_a_rotation_keeps_the_keys_another_process_added_since_open(keystore_path: Path):
    mine = Keystore.create(keystore_path, PASSPHRASE)
    theirs = Keystore.open(keystore_path, PASSPHRASE)
    assert theirs.rotate() == 2
    assert mine.rotate() == 3
    assert mine.versions == (1, 2, 3) and mine.public_key(2) == theirs.public_key(2)
    assert Keystore.open(keystore_path, PASSPHRASE).versions == (1, 2, 3)
