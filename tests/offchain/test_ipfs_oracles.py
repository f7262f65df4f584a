"""Our importer gives the same CIDs as Kubo's importer and npm's ipfs-unixfs-importer."""

import random
from pathlib import Path

import pytest
from oracles.kubo_oracle import kubo_only_hash
from oracles.unixfs_oracle import js_importer_cids

from offchain.ipfs import CID, EmbeddedStore

CHUNK = 262_144
SIZES = {
    "empty": 0,
    "one byte": 1,
    "one chunk less a byte": CHUNK - 1,
    "one chunk": CHUNK,
    "one chunk and a byte": CHUNK + 1,
    "1 MiB and a byte": (1 << 20) + 1,
    "one full node of 174 leaves": 174 * CHUNK,
    "a second tree level": 174 * CHUNK + 1,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("oracle-files")
    content = random.Random(5).randbytes(max(SIZES.values()))
    paths = {}
    for index, (name, size) in enumerate(SIZES.items()):
        paths[name] = folder / f"{index}.bin"
        paths[name].write_bytes(content[:size])
    return paths


@pytest.fixture(scope="module")
def kubo_v0(files) -> dict[str, str]:
    return dict(zip(files, (found.cid for found in kubo_only_hash(list(files.values())))))


@pytest.fixture(scope="module", params=[0, 1], ids=["cidv0", "cidv1"])
def version_and_js(request, files) -> tuple[int, dict[str, str]]:
    return request.param, dict(zip(files, js_importer_cids(list(files.values()), request.param)))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> EmbeddedStore:
    return EmbeddedStore(tmp_path_factory.mktemp("store"))


def ours(store: EmbeddedStore, path: Path, cid_version: int, only_hash: bool = True) -> str:
    with path.open("rb") as stream:
        return str(store.add(stream, cid_version=cid_version, only_hash=only_hash))


@pytest.mark.parametrize("name", SIZES)
def test_cid_equals_the_js_importer(store, files, version_and_js, name):
    version, js = version_and_js
    assert ours(store, files[name], version) == js[name]


@pytest.mark.parametrize("name", SIZES)
def test_cidv0_equals_kubo(store, files, kubo_v0, name):
    assert ours(store, files[name], 0) == kubo_v0[name]


def test_the_oracles_tell_the_sizes_and_versions_apart(files, kubo_v0, version_and_js):
    """Each oracle answer is distinct, so a wrong chunking or layout cannot match by accident."""
    version, js = version_and_js
    assert len(set(js.values())) == len(SIZES)
    assert all(cid.startswith("Qm" if version == 0 else "baf") for cid in js.values())
    if version == 0:
        assert js == kubo_v0


def test_stored_add_gives_the_oracle_cid_and_cats_back_the_file(store, files, version_and_js):
    version, js = version_and_js
    path = files["a second tree level"]
    cid = CID.parse(ours(store, path, version, only_hash=False))
    assert str(cid) == js["a second tree level"]
    assert cid in store.pins()
    assert b"".join(store.iter_cat(cid)) == path.read_bytes()
