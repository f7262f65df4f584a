"""Study config, sealed artifacts and hospital tables: the parts of rounds that need no chain.

Real crypto (AES-256-GCM, X25519), a real embedded store on disk.
"""

import hashlib
import json
from pathlib import Path

import pytest

from fl.artifacts import encode_artifact
from fl.client import LocalTrainingConfig
from fl.models import ModelSpec
from fl.privacy import DPSGDConfig
from offchain.crypto import Keystore
from offchain.ipfs import EmbeddedStore
from offchain.rounds.config import StudyConfig, StudyConfigError
from offchain.rounds.errors import ArtifactCheckFailed, TableError
from offchain.rounds.sealed import AGGREGATE, UPDATE, Place, open_sealed, readers_of, seal
from offchain.rounds.tables import load_table
from .tamper import flip_stored_byte

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
C = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def config(**changes) -> StudyConfig:
    settings = dict(model=ModelSpec("logistic", 3), participants=(A, B), auditors=(C,))
    settings.update(changes)
    return StudyConfig(**settings)


def test_config_is_canonical_and_round_trips():
    study = config(aggregator="fedadam", aggregator_params={"learning_rate": 0.05},
                   training=LocalTrainingConfig(epochs=2, mu=0.1), dp=DPSGDConfig(1.1, 1.0))
    data = study.canonical_bytes()
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert StudyConfig.from_bytes(data, study.digest()) == study
    assert study.digest() == hashlib.sha256(data).digest()
    assert config(participants=(A.lower(), B)).digest() == config().digest()  # addresses are checksummed
    with pytest.raises(StudyConfigError, match="do not hash"):
        StudyConfig.from_bytes(data, bytes(32))
    with pytest.raises(StudyConfigError, match="canonical"):
        StudyConfig.from_bytes(json.dumps(json.loads(data), indent=1).encode())


@pytest.mark.parametrize("changes, message", [
    ({"participants": ()}, "at least one participant"),
    ({"participants": (A, A)}, "twice"),
    ({"auditors": ("0x1234",)}, "not an Ethereum address"),
    ({"aggregator": "nope"}, "unknown aggregator"),
    ({"aggregator_params": {"beta": 1}}, "unknown config key"),
    ({"round_seconds": 0}, "round_seconds"),
])
def test_config_refuses_bad_settings(changes, message):
    with pytest.raises(StudyConfigError, match=message):
        config(**changes)


@pytest.fixture
def keystores(tmp_path):
    return {who: Keystore.create(tmp_path / f"{who}.json", "passphrase") for who in (A, B, C)}


def place(kind=UPDATE, round_number=1, author=A) -> Place:
    return Place(31337, "0x" + "11" * 20, 1, round_number, kind, author)


def test_sealed_artifact_opens_for_each_reader_and_checks_everything(tmp_path, keystores):
    store = EmbeddedStore(tmp_path / "ipfs")
    plaintext = encode_artifact({"w": __import__("torch").arange(6.0)}, {"kind": "x"})
    digest = hashlib.sha256(plaintext).digest()
    readers = {who: (keystores[who].public_key(), 1, keystores[who].suite()) for who in (B, C)}
    cid = seal(store, plaintext, readers, place())
    assert set(readers_of(store, cid)) == {B, C}
    for who in (B, C):
        assert open_sealed(store, cid, digest, keystores[who], who, place()) == plaintext
    with pytest.raises(ArtifactCheckFailed, match=f"no key for {A}"):
        open_sealed(store, cid, digest, keystores[A], A, place())
    with pytest.raises(ArtifactCheckFailed, match="SHA-256 on chain"):
        open_sealed(store, cid, bytes(32), keystores[B], B, place())
    for elsewhere in (place(round_number=2), place(kind=AGGREGATE), place(author=B)):
        with pytest.raises(ArtifactCheckFailed, match="does not decrypt"):
            open_sealed(store, cid, digest, keystores[B], B, elsewhere)
    with pytest.raises(ArtifactCheckFailed, match="not a sealed round artifact"):
        import io
        other = store.add(io.BytesIO(b"plain bytes"))
        open_sealed(store, other, digest, keystores[B], B, place())


def test_tampered_block_in_store_is_refused(tmp_path, keystores):
    store = EmbeddedStore(tmp_path / "ipfs")
    plaintext = b"\x00" * 300_000
    cid = seal(store, plaintext, {B: (keystores[B].public_key(), 1, keystores[B].suite())}, place())
    flip_stored_byte(store, cid)
    with pytest.raises(ArtifactCheckFailed, match="cannot be read from the store|does not decrypt"):
        open_sealed(store, cid, hashlib.sha256(plaintext).digest(), keystores[B], B, place())


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_table_loads_features_and_label(tmp_path):
    table = write(tmp_path / "h.csv", "a,b,outcome,c\n1,2,0,3\n\n4.5,-1e3,1,0\n")
    hospital = load_table(table, "outcome", 3)
    assert hospital.data.features.tolist() == [[1.0, 2.0, 3.0], [4.5, -1000.0, 0.0]]
    assert hospital.data.labels.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("text, label, message", [
    ("a,b,c\n1,2,0\n", "outcome", r"h\.csv, row 1: no column 'outcome'"),
    ("a,b,outcome\n1,2,0\n", "outcome", r"row 1: 2 feature columns besides 'outcome', the study's model expects 3"),
    ("a,b,c,outcome\n1,2,3,0\n1,x,3,1\n", "outcome", r"h\.csv, row 3, column 'b': 'x' is not a number"),
    ("a,b,c,outcome\n1,2,nan,0\n", "outcome", r"row 2, column 'c': 'nan' is not a finite number"),
    ("a,b,c,outcome\n1,2,,0\n", "outcome", r"row 2, column 'c': '' is not a number"),
    ("a,b,c,outcome\n1,2,3,2\n", "outcome", r"row 2, column 'outcome': label '2' is not 0 or 1"),
    ("a,b,c,outcome\n1,2,3\n", "outcome", r"row 2: 3 cells, the header has 4"),
    ("a,b,c,outcome\n", "outcome", "no data rows"),
])
def test_table_refusals_name_file_row_and_column(tmp_path, text, label, message):
    with pytest.raises(TableError, match=message):
        load_table(write(tmp_path / "h.csv", text), label, 3)
