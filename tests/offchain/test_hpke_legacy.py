"""Records wrapped before HPKE (format 1, no suite tag) still open.

The fixture in ``data/legacy_wrap_v1`` was made by the pre-HPKE code (commit
436ca23): a keystore with two key versions, a record version encrypted under a
data key, and that key wrapped for key version 2 by the hand-built
X25519 + HKDF-SHA256 + AES-256-GCM construction.
"""

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from offchain.crypto import KeyWrapError, Keystore, decrypt_stream

DATA = Path(__file__).parent / "data" / "legacy_wrap_v1"


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> tuple[dict, Keystore]:
    meta = json.loads((DATA / "record.json").read_text())
    # git does not keep the 0600 mode the keystore insists on.
    path = tmp_path_factory.mktemp("legacy") / "reader.keystore.json"
    shutil.copyfile(DATA / "reader.keystore.json", path)
    path.chmod(0o600)
    return meta, Keystore.open(path, meta["passphrase"])


def test_a_record_made_before_hpke_opens(legacy):
    meta, keystore = legacy
    record_id = bytes.fromhex(meta["record_id"])
    wrapped = (DATA / "wrapped_key.bin").read_bytes()
    assert wrapped[:5] == b"MSKW\x01"
    data_key = keystore.unwrap_data_key(wrapped, record_id, meta["record_version"])
    plaintext = io.BytesIO()
    decrypt_stream(io.BytesIO((DATA / "record.bin").read_bytes()), plaintext, data_key, record_id,
                   meta["record_version"])
    assert len(plaintext.getvalue()) == meta["plaintext_length"]
    assert hashlib.sha256(plaintext.getvalue()).hexdigest() == meta["plaintext_sha256"]


def test_a_legacy_wrap_is_still_bound_to_its_record_version(legacy):
    meta, keystore = legacy
    wrapped = (DATA / "wrapped_key.bin").read_bytes()
    with pytest.raises(KeyWrapError, match="cannot unwrap"):
        keystore.unwrap_data_key(wrapped, bytes.fromhex(meta["record_id"]), meta["record_version"] + 1)
