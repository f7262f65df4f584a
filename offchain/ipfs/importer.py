"""A UnixFS file importer that gives Kubo's CIDs, fed as a writable stream.

Kubo's ``ipfs add`` defaults: fixed 256 KiB chunks, balanced layout with at
most 174 links a node. CIDv1 (``--cid-version=1``) stores chunks as raw
leaves; CIDv0 wraps each in a dag-pb UnixFS ``File`` node. A file of one chunk
is that chunk's leaf alone; an empty file is one empty leaf.

The balanced tree is built as the chunks arrive, one partial node a level:
a full node is closed only when one more child comes, so the tree is the one
Kubo's depth-first builder makes. Leaves are hashed (and stored) on worker
threads, since hashlib and file writes release the GIL, while the caller's
thread goes on producing (e.g. encrypting, which holds it). Workers take
chunks a few at a time, so each batch costs one hand-off, one store look-up
and one write. Chunks are cut into reused buffers, one copy of each byte, and
only a few batches are in flight, so memory stays bounded whatever the file
size.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from types import TracebackType

from offchain.ipfs.blockstore import Block
from offchain.ipfs.cid import CID, DAG_PB, RAW
from offchain.ipfs.unixfs import Link, internal_node, leaf_node_parts

CHUNK_SIZE = 262_144
MAX_LINKS = 174
CHUNKS_PER_TASK = 4
TASKS_IN_FLIGHT_PER_WORKER = 2

Chunk = bytes | bytearray | memoryview
PutBlocks = Callable[[list[Block]], None]


@lru_cache(maxsize=8)
def _cached_leaf_parts(chunk_length: int) -> tuple[bytes, bytes]:
    return leaf_node_parts(chunk_length)


class FileImporter:
    """Import one file: ``write()`` its bytes, then ``close()`` for its CID.

    ``put_blocks`` receives every block (CID and the parts that concatenate
    to it), a few at a time, from worker threads; the parts are valid only
    during the call, as their buffers are reused. ``None`` only computes the CID
    (``--only-hash``). As a context manager it closes on success and abandons
    the import on error.
    """

    def __init__(self, put_blocks: PutBlocks | None = None, *, cid_version: int = 1, workers: int = 2) -> None:
        if cid_version not in (0, 1):
            raise ValueError(f"CID version must be 0 or 1, not {cid_version}")
        self._put_blocks = put_blocks
        self._version = cid_version
        self._chunk: bytearray | None = None  # the chunk being filled
        self._filled = 0
        self._spare: list[bytearray] = []  # chunk buffers whose leaves are done
        self._batch: list[Chunk] = []  # full chunks not yet handed to a worker
        self._in_flight: deque[tuple[Future[list[Link]], list[Chunk]]] = deque()
        self._max_in_flight = TASKS_IN_FLIGHT_PER_WORKER * workers
        self._levels: list[list[Link]] = []
        self._workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unixfs-leaf")
        self._cid: CID | None = None
        self.size = 0

    @property
    def cid(self) -> CID:
        """The file's CID, once closed."""
        if self._cid is None:
            raise RuntimeError("the import is not finished: close() it first")
        return self._cid

    def write(self, data: Chunk) -> int:
        """Append bytes to the file."""
        if self._cid is not None:
            raise ValueError("write to a closed importer")
        if type(data) is bytes and len(data) == CHUNK_SIZE and not self._filled:
            self._submit(data)  # immutable and chunk-sized: no copy needed
            self.size += CHUNK_SIZE
            return CHUNK_SIZE
        view = memoryview(data).cast("B")
        position = 0
        while position < len(view):
            if self._chunk is None:
                self._chunk = self._spare.pop() if self._spare else bytearray(CHUNK_SIZE)
            take = min(CHUNK_SIZE - self._filled, len(view) - position)
            self._chunk[self._filled : self._filled + take] = view[position : position + take]
            self._filled += take
            position += take
            if self._filled == CHUNK_SIZE:
                self._submit(self._chunk)
                self._chunk, self._filled = None, 0
        self.size += len(view)
        return len(view)

    def close(self) -> CID:
        """Finish the import and return the file's CID."""
        if self._cid is not None:
            return self._cid
        try:
            if self._chunk is not None:
                self._submit(memoryview(self._chunk)[: self._filled])  # the last, short chunk
            elif not (self._levels or self._in_flight or self._batch):
                self._submit(b"")  # the one empty leaf of an empty file
            self._hand_over()
            while self._in_flight:
                self._settle_oldest()
            level = 0
            while not (level == len(self._levels) - 1 and len(self._levels[level]) == 1):
                children, self._levels[level] = self._levels[level], []
                self._add(level + 1, self._node(children))
                level += 1
            self._cid = CID.from_bytes(self._levels[level][0].cid)
        finally:
            self._workers.shutdown(cancel_futures=True)
        return self._cid

    def abandon(self) -> None:
        """Stop without a CID (blocks already stored stay until garbage-collected)."""
        self._workers.shutdown(cancel_futures=True)
        self._in_flight.clear()

    def __enter__(self) -> FileImporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()

    def _submit(self, chunk: Chunk) -> None:
        self._batch.append(chunk)
        if len(self._batch) == CHUNKS_PER_TASK:
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self._in_flight.append((self._workers.submit(self._leaves, batch), batch))
        if len(self._in_flight) > self._max_in_flight:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        """Wait for the oldest batch of leaves, add them to the tree and take their buffers back."""
        future, batch = self._in_flight.popleft()
        for link in future.result():
            self._add(0, link)
        self._spare.extend(chunk for chunk in batch if type(chunk) is bytearray)

    def _leaves(self, chunks: list[Chunk]) -> list[Link]:
        blocks = [self._leaf(chunk) for chunk in chunks]
        if self._put_blocks is not None:
            self._put_blocks(blocks)
        return [Link(bytes(cid), sum(map(len, parts)), len(chunk)) for (cid, parts), chunk in zip(blocks, chunks)]

    def _leaf(self, chunk: Chunk) -> Block:
        if self._version == 1:
            return CID.from_digest(1, RAW, hashlib.sha256(chunk).digest()), (chunk,)
        prefix, suffix = _cached_leaf_parts(len(chunk))
        digest = hashlib.sha256(prefix)
        digest.update(chunk)
        digest.update(suffix)
        return CID.from_digest(0, DAG_PB, digest.digest()), (prefix, chunk, suffix)

    def _node(self, children: list[Link]) -> Link:
        block = internal_node(children)
        cid = CID.from_digest(self._version, DAG_PB, hashlib.sha256(block).digest())
        if self._put_blocks is not None:
            self._put_blocks([(cid, (block,))])
        return Link(bytes(cid), len(block) + sum(child.tsize for child in children), sum(c.filesize for c in children))

    def _add(self, level: int, link: Link) -> None:
        """Append ``link`` to the open node at ``level``, closing that node first if it is full."""
        if level == len(self._levels):
            self._levels.append([])
        if len(self._levels[level]) == MAX_LINKS:
            children, self._levels[level] = self._levels[level], []
            self._add(level + 1, self._node(children))
        self._levels[level].append(link)
