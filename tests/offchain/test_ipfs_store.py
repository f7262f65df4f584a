"""The embedded store: round trips, verified reads, atomic writes, pins and garbage collection."""

import hashlib
import io
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.ipfs import CID, DAG_PB, BlockNotFound, CorruptBlock, EmbeddedStore, FileImporter, NotAFile, NotPinned, Store
from offchain.ipfs.unixfs import decode_file_node
from offchain.settings import Settings

CHUNK = 262_144


def content(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store(tmp_path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "ipfs")


def add(store: EmbeddedStore, data: bytes, **options) -> CID:
    return store.add(io.BytesIO(data), **options)


def cat(store: Store, cid: CID) -> bytes:
    out = io.BytesIO()
    assert store.cat(cid, out) == len(out.getvalue())
    return out.getvalue()


def test_it_is_a_store():
    assert issubclass(EmbeddedStore, Store)


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 5])
def test_add_then_cat_returns_the_same_bytes_and_pins(store, version, size):
    data = content(size)
    cid = add(store, data, cid_version=version)
    assert cid.version == version
    assert store.has(cid)
    assert cat(store, cid) == data
    assert store.pins() == [cid]


def test_only_hash_stores_nothing_and_gives_the_stored_cid(store):
    data = content(CHUNK + 1)
    cid = add(store, data, only_hash=True)
    assert not store.has(cid)
    assert store.pins() == []
    assert not list(store.blocks.multihashes())
    assert add(store, data) == cid


def test_the_writer_gives_the_same_cid_however_the_bytes_are_split(store):
    data = content(2 * CHUNK + 77)
    with store.writer() as writer:
        for start in range(0, len(data), 100_003):
            writer.write(memoryview(data)[start : start + 100_003])
    assert writer.cid == add(store, data, only_hash=True)
    assert writer.size == len(data)
    assert cat(store, writer.cid) == data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 3 * CHUNK + 3), cuts=st.lists(st.integers(1, CHUNK + 9), max_size=12), version=st.sampled_from([0, 1]))
def test_chunking_does_not_depend_on_write_sizes(size, cuts, version):
    data = content(size, seed=size)
    whole = FileImporter(cid_version=version)
    whole.write(data)
    pieces, position = FileImporter(cid_version=version), 0
    for cut in cuts:
        pieces.write(data[position : position + cut])
        position += cut
    pieces.write(data[position:])
    assert pieces.close() == whole.close()


def test_an_importer_refuses_use_after_close_and_bad_versions():
    importer = FileImporter()
    with pytest.raises(RuntimeError, match="close"):
        importer.cid
    importer.close()
    with pytest.raises(ValueError, match="closed"):
        importer.write(b"x")
    with pytest.raises(ValueError, match="CID version must be 0 or 1"):
        FileImporter(cid_version=2)


def test_an_error_while_writing_pins_nothing(store):
    with pytest.raises(OSError, match="disk on fire"):
        with store.writer() as writer:
            writer.write(content(CHUNK + 1))
            raise OSError("disk on fire")
    assert store.pins() == []


def test_cat_yields_a_long_file_a_block_at_a_time(store):
    """A file far larger than the importer's in-flight window round-trips, read one block at a time."""
    data = content(40 * CHUNK + 3)
    cid = add(store, data)
    pieces = list(store.iter_cat(cid))
    assert max(map(len, pieces)) <= CHUNK
    assert b"".join(pieces) == data


def leaf_cids(store: EmbeddedStore, root: CID) -> list[CID]:
    return [CID.from_bytes(link) for link in decode_file_node(store.blocks.get(root)).links]


@pytest.mark.parametrize("version", [0, 1])
def test_a_corrupt_leaf_is_an_error_naming_its_cid_after_only_correct_bytes(store, version):
    data = content(3 * CHUNK)
    root = add(store, data, cid_version=version)
    second = leaf_cids(store, root)[1]
    path = store.blocks.path(second)
    block = bytearray(path.read_bytes())
    block[-20] ^= 1
    path.write_bytes(block)

    out = io.BytesIO()
    with pytest.raises(CorruptBlock, match=f"block {second} is corrupt") as raised:
        store.cat(root, out)
    assert raised.value.cid == second
    assert out.getvalue() == data[:CHUNK]


def test_a_corrupt_root_is_an_error_naming_it(store):
    root = add(store, content(2 * CHUNK))
    store.blocks.path(root).write_bytes(b"\x00" * 10)
    with pytest.raises(CorruptBlock, match=str(root)):
        cat(store, root)


@pytest.mark.parametrize("damage", ["truncated", "bit flipped"])
def test_adding_again_repairs_a_damaged_block(store, damage):
    data = content(2 * CHUNK)
    root = add(store, data)
    path = store.blocks.path(leaf_cids(store, root)[0])
    block = bytearray(path.read_bytes())
    if damage == "truncated":
        del block[-1]
    else:
        block[7] ^= 0x10
    path.write_bytes(block)
    with pytest.raises(CorruptBlock):
        cat(store, root)
    add(store, data)
    assert cat(store, root) == data


def test_a_missing_block_is_an_error_naming_it(store):
    root = add(store, content(2 * CHUNK))
    leaf = leaf_cids(store, root)[1]
    store.blocks.path(leaf).unlink()
    with pytest.raises(BlockNotFound, match=f"block {leaf} is not in the store"):
        cat(store, root)
    unknown = CID.from_digest(1, DAG_PB, bytes(32))
    assert not store.has(unknown)
    with pytest.raises(BlockNotFound, match=str(unknown)):
        cat(store, unknown)


def test_writes_leave_no_temporary_files(store):
    add(store, content(5 * CHUNK + 1))
    assert not [path for path in store.root.rglob("*") if path.name.endswith(".tmp")]


def put_block(store: EmbeddedStore, codec: int, block: bytes) -> CID:
    cid = CID.from_digest(1, codec, hashlib.sha256(block).digest())
    store.blocks.put(cid, [block])
    return cid


@pytest.mark.parametrize(
    "codec, block, reason",
    [
        (DAG_PB, bytes.fromhex("0a020801"), "UnixFS node of type 1, not a file"),  # an empty directory
        (DAG_PB, bytes.fromhex("12020a00"), "without UnixFS data"),
        (DAG_PB, bytes.fromhex("0a05"), "truncated"),
        (0x71, b"\xa0", "unsupported codec 0x71"),  # dag-cbor
    ],
)
def test_what_is_not_a_unixfs_file_is_refused_with_the_reason(store, codec, block, reason):
    cid = put_block(store, codec, block)
    with pytest.raises(NotAFile, match=reason):
        cat(store, cid)


@pytest.mark.parametrize(
    "filesize, blocksize, reason",
    [(4, 3, "declares 4 bytes but holds 3"), (4, 4, "its parent declares 4 bytes but it holds 3")],
)
def test_a_node_whose_sizes_disagree_with_its_children_is_refused(store, filesize, blocksize, reason):
    leaf = put_block(store, 0x55, b"abc")
    link = b"\x0a" + bytes([len(bytes(leaf))]) + bytes(leaf) + b"\x12\x00\x18\x03"
    unixfs = bytes((0x08, 0x02, 0x18, filesize, 0x20, blocksize))
    node = b"\x12" + bytes([len(link)]) + link + b"\x0a" + bytes([len(unixfs)]) + unixfs
    with pytest.raises(NotAFile, match=reason):
        cat(store, put_block(store, DAG_PB, node))


def test_pins_persist_and_unpinning_an_unpinned_cid_is_an_error(store):
    first, second = add(store, b"first"), add(store, b"second", cid_version=0)
    reopened = EmbeddedStore(store.root)
    assert reopened.pins() == [first, second]
    reopened.unpin(first)
    assert EmbeddedStore(store.root).pins() == [second]
    with pytest.raises(NotPinned, match=f"{first} is not pinned"):
        reopened.unpin(first)


def test_pin_needs_the_whole_dag(store):
    root = add(store, content(2 * CHUNK))
    store.unpin(root)
    store.pin(root)
    assert store.pins() == [root]
    store.unpin(root)
    store.blocks.path(leaf_cids(store, root)[1]).unlink()
    with pytest.raises(BlockNotFound):
        store.pin(root)
    assert store.pins() == []


def test_gc_removes_only_what_no_pin_reaches(store):
    shared = content(2 * CHUNK, seed=7)
    dropped = add(store, shared + b"dropped")
    kept = add(store, shared + b"kept")  # shares its two full leaves with `dropped`
    stray = store.blocks.root / "ab" / ".left-by-a-crash.tmp"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"partial")
    store.unpin(dropped)

    removed = store.gc()

    assert removed == 2  # dropped's root and its last leaf
    assert not store.has(dropped)
    assert cat(store, kept) == shared + b"kept"
    assert not stray.exists()
    assert store.gc() == 0


def test_the_default_store_lives_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDSHARE_HOME", raising=False)
    assert EmbeddedStore.from_settings().root == tmp_path / ".medshare" / "ipfs"
    assert EmbeddedStore.from_settings(Settings(home=tmp_path / "h")).root == tmp_path / "h" / "ipfs"
