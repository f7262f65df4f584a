"""Blocks on disk, one file each, checked against their hash on every read.

Files are named as Kubo's flatfs names them: the upper-case base32 of the
block's multihash, sharded by its next-to-last two characters
(``blocks/<shard>/<KEY>.data``), so v0 and v1 CIDs of one block share a file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from offchain.ipfs.cid import CID, SHA2_256
from offchain.ipfs.errors import BlockNotFound, CorruptBlock, StoreError

BlockParts = Sequence[bytes | bytearray | memoryview]


class Blockstore:
    """A folder of content-addressed blocks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._shards_made: set[Path] = set()

    def path(self, cid: CID) -> Path:
        """The file holding ``cid``'s block."""
        return self._file(cid.multihash)

    def _file(self, multihash: bytes) -> Path:
        key = base64.b32encode(multihash).decode().rstrip("=")
        return self.root / key[-3:-1] / f"{key}.data"

    def put(self, cid: CID, parts: BlockParts) -> None:
        """Store the block ``b"".join(parts)`` under ``cid`` (trusted: the caller hashed it).

        Atomic: written to a temporary file then renamed, so a reader never
        sees half a block. A block already stored intact is kept; a damaged
        one is replaced, so adding a file again repairs it.
        """
        path = self.path(cid)
        try:
            if path.stat().st_size == sum(len(part) for part in parts) and self._intact(cid, path):
                return
        except FileNotFoundError:
            pass
        if path.parent not in self._shards_made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._shards_made.add(path.parent)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(temporary, "xb") as file:
                file.writelines(parts)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def get(self, cid: CID) -> bytes:
        """The block named ``cid``, verified against its hash."""
        if cid.hash_code != SHA2_256:
            raise StoreError(f"block {cid}: only sha2-256 multihashes are supported")
        path = self.path(cid)
        try:
            block = path.read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(cid) from None
        if hashlib.sha256(block).digest() != cid.digest:
            raise CorruptBlock(cid, str(path))
        return block

    @staticmethod
    def _intact(cid: CID, path: Path) -> bool:
        return hashlib.sha256(path.read_bytes()).digest() == cid.digest

    def has(self, cid: CID) -> bool:
        """Whether ``cid``'s block is stored (not verified)."""
        return self.path(cid).is_file()

    def multihashes(self) -> Iterator[bytes]:
        """The multihash of every stored block."""
        for path in self.root.glob("*/*.data"):
            stem = path.name.removesuffix(".data")
            try:
                yield base64.b32decode(stem + "=" * (-len(stem) % 8))
            except binascii.Error:
                continue  # not a block file

    def delete(self, multihash: bytes) -> None:
        """Remove the block with this multihash, if stored."""
        self._file(multihash).unlink(missing_ok=True)

    def remove_temporaries(self) -> int:
        """Delete temporary files left by interrupted writes; only safe while no write runs."""
        leftovers = list(self.root.glob("*/.*.tmp"))
        for path in leftovers:
            path.unlink(missing_ok=True)
        return len(leftovers)
