"""Blocks on disk, packed into large files, checked against their hash on every read.

Layout under the root: ``packs/<id>.pack`` hold blocks back to back, one pack
a writer (an add puts all its new blocks in one pack), and ``index.sqlite``
maps each block's multihash to its pack, offset and length, so v0 and v1 CIDs
of one block share it; ``index.lock`` makes processes take turns opening it.
Packs, not a file a block, because creating and renaming a file for every
256 KiB block costs more than encrypting, hashing and writing it on some file
systems (1 ms a file in a crowded ext4 group).

- Atomic and durable: a writer's blocks are listed in the index in one
  transaction once all their bytes are written and fsynced (one fsync a pack,
  not a block, then one for the directory entry), and that transaction is
  itself fsynced (SQLite ``synchronous=FULL``), so no reader, in any process,
  sees half a block or half an add, and a block the index lists survives a
  crash or a power loss. :meth:`Blockstore.retain` unlinks a pack only once
  the blocks it keeps are listed, durably, in their new pack.
- Verified: every read is checked against the block's hash; a mismatch is
  :class:`CorruptBlock` naming the CID and where its bytes lie.
- Concurrent: each writer appends to its own pack and SQLite serialises the
  index. Readers take no lock: a block that :meth:`Blockstore.retain` moves
  is listed at its new place before its old pack goes. ``retain`` itself
  needs writers excluded (the embedded store's repository lock does that).
  An index that fails (damaged, or locked past the timeout) is a
  :class:`StoreError` naming it.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import secrets
import sqlite3
import sys
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from offchain.crypto.atomic import fsync_directory
from offchain.ipfs.cid import CID, SHA2_256
from offchain.ipfs.errors import BlockNotFound, CorruptBlock, StoreError

BlockParts = Sequence[bytes | bytearray | memoryview]
Block = tuple[CID, BlockParts]  # a CID and the parts that concatenate to its block

# A writer waits this long for another process's index transaction.
_BUSY_TIMEOUT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    multihash BLOB PRIMARY KEY,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_by_pack ON blocks (pack);
"""


@dataclass(frozen=True)
class BlockLocation:
    """Where a block's bytes lie: ``length`` bytes from ``offset`` in the pack file ``path``."""

    path: Path
    offset: int
    length: int

    def __str__(self) -> str:
        return f"{self.path} (bytes {self.offset} to {self.offset + self.length})"


class Blockstore:
    """A folder of content-addressed blocks, packed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._packs = self.root / "packs"
        self._index_lock = threading.Lock()  # one connection, shared by an importer's threads
        self._connection: sqlite3.Connection | None = None
        self._connection_pid = 0

    @contextmanager
    def writer(self) -> Iterator[PackWriter]:
        """A new pack to put blocks in, listed when the ``with`` block ends without error, else deleted."""
        pack = PackWriter(self)
        try:
            yield pack
            pack.seal()
        finally:
            pack.close()

    def put(self, cid: CID, parts: BlockParts) -> None:
        """Store one block ``b"".join(parts)`` under ``cid`` (trusted: the caller hashed it), in a pack of its own."""
        with self.writer() as pack:
            pack.put(cid, parts)

    def get(self, cid: CID) -> bytes:
        """The block named ``cid``, verified against its hash."""
        if cid.hash_code != SHA2_256:
            raise StoreError(f"block {cid}: only sha2-256 multihashes are supported")
        location = self.locate(cid)
        while True:
            try:
                block = _read(location)
                break
            except FileNotFoundError:
                moved = self.locate(cid)  # a concurrent retain() moved it, or the pack is lost
                if moved == location:
                    raise CorruptBlock(cid, f"{location}, whose pack file is missing,") from None
                location = moved
        if hashlib.sha256(block).digest() != cid.digest:
            raise CorruptBlock(cid, str(location))
        return block

    def locate(self, cid: CID) -> BlockLocation:
        """Where ``cid``'s block is stored; BlockNotFound if it is not."""
        location = self._find(cid.multihash)
        if location is None:
            raise BlockNotFound(cid)
        return location

    def has(self, cid: CID) -> bool:
        """Whether ``cid``'s block is stored (not verified)."""
        return self._find(cid.multihash) is not None

    def multihashes(self) -> Iterator[bytes]:
        """The multihash of every stored block."""
        with self._index() as index:
            rows = index.execute("SELECT multihash FROM blocks").fetchall()
        return (multihash for (multihash,) in rows)

    def retain(self, keep: Collection[bytes]) -> int:
        """Delete every block whose multihash is not in ``keep`` and reclaim its space; returns how many.

        Packs with unlisted bytes (deleted or replaced blocks, an interrupted
        writer's) are rewritten: their listed blocks move to one new pack,
        then they are deleted. Only safe while no writer runs, in any process.
        """
        with self._transaction() as index:
            live_bytes: dict[int, int] = defaultdict(int)
            dead = []
            for multihash, pack, length in index.execute("SELECT multihash, pack, length FROM blocks"):
                if multihash in keep:
                    live_bytes[pack] += length
                else:
                    dead.append((multihash,))
            index.executemany("DELETE FROM blocks WHERE multihash = ?", dead)
        wasteful = [
            (pack, path)
            for pack, path in self._pack_files()
            if pack not in live_bytes or path.stat().st_size != live_bytes[pack]
        ]
        with self.writer() as target:
            for pack, _ in wasteful:
                with self._index() as index:
                    moving = index.execute("SELECT multihash, offset, length FROM blocks WHERE pack = ?", (pack,)).fetchall()
                for multihash, offset, length in moving:
                    target.append(multihash, (_read(BlockLocation(self._pack_path(pack), offset, length)),))
        # The target pack was fsynced and listed durably as it was sealed: only now may the old ones go.
        for _, path in wasteful:
            path.unlink()
        if wasteful:
            fsync_directory(self._packs)
        return len(dead)

    def _find(self, multihash: bytes) -> BlockLocation | None:
        with self._index() as index:
            row = index.execute("SELECT pack, offset, length FROM blocks WHERE multihash = ?", (multihash,)).fetchone()
        return None if row is None else BlockLocation(self._pack_path(row[0]), row[1], row[2])

    def _listed(self, multihashes: Sequence[bytes]) -> set[bytes]:
        """Which of ``multihashes`` the index lists, in one query."""
        with self._index() as index:
            rows = index.execute(
                f"SELECT multihash FROM blocks WHERE multihash IN ({', '.join('?' * len(multihashes))})", multihashes
            ).fetchall()
        return {multihash for (multihash,) in rows}

    def _intact(self, cid: CID) -> bool:
        """Whether ``cid``'s block is stored and hashes right."""
        try:
            self.get(cid)
        except StoreError:
            return False
        return True

    def _list(self, pack: int, entries: dict[bytes, tuple[int, int]]) -> None:
        with self._transaction() as index:
            index.executemany(
                "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)",
                ((multihash, pack, offset, length) for multihash, (offset, length) in entries.items()),
            )

    def _pack_path(self, pack: int) -> Path:
        return self._packs / f"{pack:016x}.pack"

    def _pack_files(self) -> Iterator[tuple[int, Path]]:
        for path in self._packs.glob("*.pack"):
            try:
                yield int(path.stem, 16), path
            except ValueError:
                continue  # not a pack of ours

    @contextmanager
    def _index(self) -> Iterator[sqlite3.Connection]:
        with self._index_lock:
            try:
                if self._connection is None or self._connection_pid != os.getpid():
                    # A forked child must not share its parent's connection; it opens its own.
                    self._connection = self._connect()
                    self._connection_pid = os.getpid()
                yield self._connection
            except sqlite3.Error as error:
                raise StoreError(f"block index {self.root / 'index.sqlite'}: {error}") from error

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._index() as index:
            index.execute("BEGIN IMMEDIATE")
            try:
                yield index
            except BaseException:
                index.execute("ROLLBACK")
                raise
            index.execute("COMMIT")

    def _connect(self) -> sqlite3.Connection:
        self._packs.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.root / "index.sqlite", timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            # Switching to WAL answers "database is locked" at once, without waiting, while another
            # process switches too, so processes opening a new index take turns (a lock file, as
            # locking the database file itself would break SQLite's own POSIX locks).
            with open(self.root / "index.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                connection.execute("PRAGMA journal_mode = WAL")  # readers never wait for a writer
                connection.executescript(_SCHEMA)
            # In WAL mode NORMAL may lose the last commits at a power loss; FULL fsyncs the log at each commit,
            # so a listing is durable when the writer returns (one fsync an add, as an add is one commit).
            connection.execute("PRAGMA synchronous = FULL")
        except BaseException:
            connection.close()
            raise
        fsync_directory(self.root)  # the index file's own directory entry (SQLite syncs its log's)
        return connection


class PackWriter:
    """Appends blocks to one new pack; safe to use from several threads. Made by :meth:`Blockstore.writer`."""

    def __init__(self, blocks: Blockstore) -> None:
        self._blocks = blocks
        blocks._packs.mkdir(parents=True, exist_ok=True)
        self._pack = secrets.randbits(63)
        self.path = blocks._pack_path(self._pack)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._lock = threading.Lock()
        self._end = 0
        self._entries: dict[bytes, tuple[int, int]] = {}
        self._sealed = False

    def put(self, cid: CID, parts: BlockParts) -> None:
        """Store the block ``b"".join(parts)`` under ``cid`` (trusted: the caller hashed it); see :meth:`put_many`."""
        self.put_many([(cid, parts)])

    def put_many(self, blocks: Sequence[Block]) -> None:
        """Store blocks (trusted: the caller hashed them), in one look-up and one write.

        A block already stored intact is not written again; a damaged one is
        written anew and listed in its place, so adding a file again repairs it.
        """
        new = [(cid, parts) for cid, parts in blocks if cid.multihash not in self._entries]
        listed = self._blocks._listed([cid.multihash for cid, _ in new]) if new else set()
        self._append(
            [(cid.multihash, parts) for cid, parts in new if cid.multihash not in listed or not self._blocks._intact(cid)]
        )

    def append(self, multihash: bytes, parts: BlockParts) -> None:
        """Write the block to this pack unless it already holds it, without looking at the store."""
        self._append([(multihash, parts)])

    def _append(self, blocks: Sequence[tuple[bytes, BlockParts]]) -> None:
        """Write the blocks this pack lacks back to back, in one system call."""
        parts: list[bytes | bytearray | memoryview] = []
        with self._lock:
            if self._sealed or self._fd < 0:
                raise ValueError("write to a finished pack")
            start = self._end
            for multihash, block_parts in blocks:
                if multihash not in self._entries:
                    length = sum(len(part) for part in block_parts)
                    self._entries[multihash] = (self._end, length)
                    self._end += length
                    parts.extend(block_parts)
            end = self._end
        # Outside the lock: threads write their own ranges of the file at once.
        _write_at(self._fd, parts, start)
        _start_writeback(self._fd, start, end - start)

    def seal(self) -> None:
        """Make every block written durable, then list them; an empty pack is deleted instead."""
        with self._lock:
            try:
                if self._entries:
                    os.fsync(self._fd)  # the bytes, before the index may point at them
            finally:
                os.close(self._fd)
                self._fd = -1
            if self._entries:
                fsync_directory(self._blocks._packs)  # the pack's name, likewise
                self._blocks._list(self._pack, self._entries)
                self._sealed = True

    def close(self) -> None:
        """Release the file; a pack not sealed is deleted."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if not self._sealed:
            self.path.unlink(missing_ok=True)


def _read(location: BlockLocation) -> bytes:
    """The bytes at ``location``; fewer if the pack is shorter (the hash check then fails)."""
    fd = os.open(location.path, os.O_RDONLY)
    try:
        pieces, offset, remaining = [], location.offset, location.length
        while remaining:
            piece = os.pread(fd, remaining, offset)
            if not piece:
                break
            pieces.append(piece)
            offset += len(piece)
            remaining -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    finally:
        os.close(fd)


def _load_sync_file_range():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_sync_file_range = _load_sync_file_range() if sys.platform == "linux" else None
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes to disk now, without waiting (Linux's sync_file_range).

    The seal's fsync then finds little left to write, so the disk works while the add goes on instead of
    after it. Not a durability step: only the fsync is.
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _write_at(fd: int, parts: BlockParts, offset: int) -> None:
    views = [memoryview(part).cast("B") for part in parts if len(part)]
    while views:
        written = os.pwritev(fd, views, offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views:
            views[0] = views[0][written:]
