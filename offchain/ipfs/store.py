"""The interface every IPFS store offers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol, runtime_checkable

from offchain.ipfs.cid import CID


class FileWriter(Protocol):
    """What ``Store.writer()`` yields: a sink for the file's bytes, then its CID."""

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    @property
    def cid(self) -> CID: ...


@runtime_checkable
class Store(Protocol):
    """A place to put files by content and get them back by CID."""

    def add(self, stream: BinaryIO, *, cid_version: int = 1, only_hash: bool = False) -> CID:
        """Import the stream's bytes as a UnixFS file and pin it (as ``ipfs add``); ``only_hash`` stores nothing."""
        ...

    def writer(self, *, cid_version: int = 1) -> AbstractContextManager[FileWriter]:
        """Add a file by writing to it: ``with store.writer() as w: w.write(...)``, then ``w.cid``.

        For producers that write (e.g. a streaming encryptor). The file is
        added and pinned only if the block ends without error.
        """
        ...

    def iter_cat(self, cid: CID) -> Iterator[bytes]:
        """The file's bytes, in pieces."""
        ...

    def cat(self, cid: CID, out: BinaryIO) -> int:
        """Write the file's bytes to ``out``; returns how many."""
        ...

    def has(self, cid: CID) -> bool:
        """Whether the block named ``cid`` is available locally."""
        ...

    def verify(self, cid: CID) -> None:
        """Check that every block of the file ``cid`` is present and matches its hash; StoreError if not."""
        ...

    def pin(self, cid: CID) -> None:
        """Keep ``cid`` and everything it links to from garbage collection."""
        ...

    def unpin(self, cid: CID) -> None:
        """Undo ``pin``; NotPinned if it was not pinned."""
        ...

    def pins(self) -> list[CID]:
        """The pinned CIDs."""
        ...


def write_chunks(chunks: Iterator[bytes], out: BinaryIO) -> int:
    """Write every chunk to ``out``; returns the byte count (the body of ``Store.cat``)."""
    written = 0
    for chunk in chunks:
        out.write(chunk)
        written += len(chunk)
    return written


class CatReader(io.RawIOBase):
    """A file in a store as a readable binary stream (e.g. for a streaming decryptor)."""

    def __init__(self, store: Store, cid: CID) -> None:
        self._pieces = store.iter_cat(cid)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._pending = memoryview(piece)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_cat(store: Store, cid: CID) -> BinaryIO:
    """The file ``cid`` in ``store`` as a buffered binary stream."""
    return io.BufferedReader(CatReader(store, cid), buffer_size=1 << 20)  # type: ignore[return-value]
