"""The interface every IPFS store offers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol, runtime_checkable

from offchain.ipfs.cid import CID


@runtime_checkable
class Store(Protocol):
    """A place to put files by content and get them back by CID."""

    def add(self, stream: BinaryIO, *, cid_version: int = 1, only_hash: bool = False) -> CID:
        """Import the stream's bytes as a UnixFS file and pin it (as ``ipfs add``); ``only_hash`` stores nothing."""
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
