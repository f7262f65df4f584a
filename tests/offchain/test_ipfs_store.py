"""The embedded store: round trips, verified reads, packed atomic writes, pins and garbage collection."""

import hashlib
import io
import multiprocessing
import random
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.ipfs import (
    CID,
    DAG_PB,
    BlockNotFound,
    CorruptBlock,
    EmbeddedStore,
    FileImporter,
    NotAFile,
    NotPinned,
    Store,
    StoreError,
)
from offchain.ipfs.blockstore import PackWriter
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


def test_a_long_file_written_in_odd_pieces_round_trips(store):
    """Far more chunks than the importer keeps in flight, so its chunk buffers are reused."""
    data = content(40 * CHUNK + 3, seed=4)
    with store.writer(cid_version=0) as writer:
        for start in range(0, len(data), 100_003):
            writer.write(memoryview(data)[start : start + 100_003])
    assert writer.cid == add(store, data, cid_version=0, only_hash=True)
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


def test_an_error_while_writing_pins_nothing_and_leaves_no_block(store):
    with pytest.raises(OSError, match="disk on fire"):
        with store.writer() as writer:
            writer.write(content(3 * CHUNK + 1))
            raise OSError("disk on fire")
    assert store.pins() == []
    assert not list(store.blocks.multihashes())
    assert pack_files(store) == []


def test_cat_yields_a_long_file_a_block_at_a_time(store):
    """A file far larger than the importer's in-flight window round-trips, read one block at a time."""
    data = content(40 * CHUNK + 3)
    cid = add(store, data)
    pieces = list(store.iter_cat(cid))
    assert max(map(len, pieces)) <= CHUNK
    assert b"".join(pieces) == data


def leaf_cids(store: EmbeddedStore, root: CID) -> list[CID]:
    return [CID.from_bytes(link) for link in decode_file_node(store.blocks.get(root)).links]


def pack_files(store: EmbeddedStore) -> list:
    return sorted((store.blocks.root / "packs").glob("*.pack"))


def damage(store: EmbeddedStore, cid: CID, change: Callable[[bytearray], None]) -> None:
    """Apply ``change`` to the bytes of ``cid``'s block where they lie in their pack."""
    location = store.blocks.locate(cid)
    with location.path.open("r+b") as pack:
        pack.seek(location.offset)
        block = bytearray(pack.read(location.length))
        change(block)
        pack.seek(location.offset)
        pack.write(block)


def flip_bit(index: int) -> Callable[[bytearray], None]:
    def change(block: bytearray) -> None:
        block[index] ^= 0x10

    return change


def zero_first(count: int) -> Callable[[bytearray], None]:
    def change(block: bytearray) -> None:
        block[:count] = bytes(count)

    return change


@pytest.mark.parametrize("version", [0, 1])
def test_a_corrupt_leaf_is_an_error_naming_its_cid_and_pack_after_only_correct_bytes(store, version):
    data = content(3 * CHUNK)
    root = add(store, data, cid_version=version)
    second = leaf_cids(store, root)[1]
    damage(store, second, flip_bit(-20))

    out = io.BytesIO()
    with pytest.raises(CorruptBlock, match=f"block {second} is corrupt") as raised:
        store.cat(root, out)
    assert raised.value.cid == second
    assert str(store.blocks.locate(second).path) in str(raised.value)
    assert out.getvalue() == data[:CHUNK]


def test_a_corrupt_root_is_an_error_naming_it(store):
    root = add(store, content(2 * CHUNK))
    damage(store, root, zero_first(10))
    with pytest.raises(CorruptBlock, match=str(root)):
        cat(store, root)


def test_a_truncated_pack_is_a_corrupt_block(store):
    data = content(3 * CHUNK)
    root = add(store, data, cid_version=1)
    last = leaf_cids(store, root)[-1]
    location = store.blocks.locate(last)
    with location.path.open("r+b") as pack:
        pack.truncate(location.offset + 5)  # the root, written last, is cut off too
    with pytest.raises(CorruptBlock, match=f"block {last} is corrupt"):
        store.blocks.get(last)
    with pytest.raises(CorruptBlock, match=f"block {root} is corrupt"):
        cat(store, root)


@pytest.mark.parametrize("damaged", ["truncated pack", "bit flipped"])
def test_adding_again_repairs_a_damaged_block(store, damaged):
    data = content(2 * CHUNK)
    root = add(store, data)
    first = leaf_cids(store, root)[0]
    if damaged == "truncated pack":
        location = store.blocks.locate(first)
        with location.path.open("r+b") as pack:
            pack.truncate(location.offset + location.length - 1)
    else:
        damage(store, first, flip_bit(7))
    with pytest.raises(CorruptBlock):
        cat(store, root)
    add(store, data)
    assert cat(store, root) == data
    assert store.gc() == 0
    assert cat(store, root) == data  # the damaged copy's pack was rewritten without it


def test_a_missing_block_is_an_error_naming_it(store):
    root = add(store, content(2 * CHUNK))
    leaf = leaf_cids(store, root)[1]
    store.blocks.retain(set(store.blocks.multihashes()) - {leaf.multihash})
    with pytest.raises(BlockNotFound, match=f"block {leaf} is not in the store"):
        cat(store, root)
    unknown = CID.from_digest(1, DAG_PB, bytes(32))
    assert not store.has(unknown)
    with pytest.raises(BlockNotFound, match=str(unknown)):
        cat(store, unknown)


def test_a_missing_pack_is_a_corrupt_block_naming_it(store):
    root = add(store, content(2 * CHUNK))
    (pack,) = pack_files(store)
    pack.unlink()
    with pytest.raises(CorruptBlock, match=f"block {root} is corrupt: .*{pack.name}.*missing"):
        cat(store, root)


def test_an_add_writes_its_new_blocks_into_one_pack_and_nothing_else(store):
    data = content(5 * CHUNK + 1)
    root = add(store, data)
    (pack,) = pack_files(store)
    blocks = [root, *leaf_cids(store, root)]
    assert pack.stat().st_size == sum(len(store.blocks.get(cid)) for cid in blocks)
    assert {store.blocks.locate(cid).path for cid in blocks} == {pack}
    assert {path.name for path in store.blocks.root.iterdir()} - {"index.sqlite-shm", "index.sqlite-wal"} == {
        "index.sqlite",
        "index.lock",
        "packs",
    }
    add(store, data)
    assert pack_files(store) == [pack]  # nothing new to store, so no new pack


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
    missing = leaf_cids(store, root)[1]
    store.blocks.retain(set(store.blocks.multihashes()) - {missing.multihash})
    with pytest.raises(BlockNotFound, match=str(missing)):
        store.pin(root)
    assert store.pins() == []


def test_gc_removes_only_what_no_pin_reaches_and_reclaims_its_space(store):
    shared = content(2 * CHUNK, seed=7)
    dropped = add(store, shared + b"dropped")
    kept = add(store, shared + b"kept")  # shares its two full leaves with `dropped`, stored in dropped's pack
    crashed = PackWriter(store.blocks)  # a writer that died: its pack was never listed
    crashed.append(b"\x12\x20" + bytes(32), [b"partial"])
    store.unpin(dropped)

    removed = store.gc()

    assert removed == 2  # dropped's root and its last leaf
    assert not store.has(dropped)
    assert cat(store, kept) == shared + b"kept"
    assert not crashed.path.exists()
    kept_blocks = [kept, *leaf_cids(store, kept)]
    assert sum(pack.stat().st_size for pack in pack_files(store)) == sum(len(store.blocks.get(c)) for c in kept_blocks)
    assert store.gc() == 0
    assert cat(store, kept) == shared + b"kept"


def test_identical_chunks_are_stored_once(store):
    data = bytes(11 * CHUNK)  # eleven equal leaves, in one batch and across batches
    root = add(store, data, cid_version=1)
    (pack,) = pack_files(store)
    assert len(set(leaf_cids(store, root))) == 1
    assert pack.stat().st_size == CHUNK + len(store.blocks.get(root))
    assert cat(store, root) == data


def test_gc_deletes_a_pack_left_holding_nothing(store):
    empty = add(store, b"")  # a pack of one empty block: zero bytes long
    (pack,) = pack_files(store)
    assert pack.stat().st_size == 0
    store.unpin(empty)
    assert store.gc() == 1
    assert pack_files(store) == []


def add_in_a_process(root: str, seed: int) -> str:
    return str(EmbeddedStore(root).add(io.BytesIO(content(3 * CHUNK + seed, seed))))


def test_processes_add_to_one_store_at_once(store):
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        cids = pool.starmap(add_in_a_process, [(str(store.root), seed) for seed in range(6)])
    assert sorted(map(str, store.pins())) == sorted(cids)
    for seed, cid in enumerate(cids):
        assert cat(store, CID.parse(cid)) == content(3 * CHUNK + seed, seed)
    assert len(pack_files(store)) == 6


def open_new_stores_in_step(roots: list[str], barrier, results) -> None:
    failures = []
    try:
        for root in roots:
            barrier.wait(timeout=60)  # every process opens this new store's index at the same moment
            try:
                EmbeddedStore(root).has(CID.from_digest(1, 0x55, bytes(32)))
            except Exception as error:  # noqa: BLE001 - reported to the test
                failures.append(f"{root}: {error!r}")
    finally:
        results.put(failures)


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    """SQLite refuses a second switch to WAL at once, without waiting, unless the openers take turns.

    Without turns, four processes opening eighty new stores together met "database is locked" for 5 to 20 of them.
    """
    context, processes = multiprocessing.get_context("spawn"), 4
    roots = [str(tmp_path / f"store-{index}") for index in range(80)]
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=open_new_stores_in_step, args=(roots, barrier, results), daemon=True)
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    failures = [failure for _ in workers for failure in results.get(timeout=300)]
    for worker in workers:
        worker.join()
    assert failures == []
    assert [worker.exitcode for worker in workers] == [0] * processes


def test_a_damaged_index_is_a_store_error_naming_it(store):
    root = add(store, b"indexed")
    index = store.blocks.root / "index.sqlite"
    reopened = EmbeddedStore(store.root)
    for sidecar in ("index.sqlite-wal", "index.sqlite-shm"):
        (store.blocks.root / sidecar).unlink(missing_ok=True)
    index.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match=f"block index {index}: file is not a database"):
        reopened.has(root)
    with pytest.raises(StoreError, match=f"block index {index}"):
        add(reopened, b"more")


def test_a_damaged_pin_list_is_a_store_error_naming_it(store):
    add(store, b"pinned")
    with (store.root / "pins").open("a") as pins:
        pins.write("not-a-cid\n")
    with pytest.raises(StoreError, match=f"the pin list {store.root / 'pins'} is damaged: 'not-a-cid' is not a CID"):
        store.pins()
    with pytest.raises(StoreError, match="pin list"):
        store.gc()


def test_reads_go_on_while_gc_moves_blocks(store):
    """A reader with its own index connection, as another process has, keeps reading while its packs go."""
    data = content(4 * CHUNK, seed=9)
    root = add(store, data)
    blocks = [root, *leaf_cids(store, root)]
    reader, failures, reads, done = EmbeddedStore(store.root), [], [], threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                assert cat(reader, root) == data
                reads.append(1)
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)
                return

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for round in range(40):
            # Copies listed in place of the old ones, beside a stray block: gc deletes the old pack and
            # rewrites this one, so the file's blocks move twice under the reader.
            with store.blocks.writer() as pack:
                for cid in blocks:
                    pack.append(cid.multihash, [store.blocks.get(cid)])
                pack.append(CID.from_digest(1, 0x55, bytes([round]) * 32).multihash, [b"stray"])
            moved = store.blocks.locate(root).path
            assert store.gc() == 1
            assert not moved.exists()
    finally:
        done.set()
        thread.join()
    assert failures == []
    assert reads


def test_the_default_store_lives_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDSHARE_HOME", raising=False)
    assert EmbeddedStore.from_settings().root == tmp_path / ".medshare" / "ipfs"
    assert EmbeddedStore.from_settings(Settings(home=tmp_path / "h")).root == tmp_path / "h" / "ipfs"
