"""The embedded store: Kubo-compatible UnixFS import into a local blockstore.

Layout under its root (``$MEDSHARE_HOME/ipfs``): ``blocks/`` (packs and
their index, see :mod:`offchain.ipfs.blockstore`), ``pins`` (the line
``medshare-pins 1``, then one CID a line) and two lock files. Adds hold the
repository lock shared and garbage collection holds it exclusively, so a collection never removes the blocks,
nor the unfinished pack, of an add in progress; pin-set changes are
serialised by their own lock. Both are ``flock`` locks, so several processes
may use one store. Reads take no lock.

Durability: an add returns its CID only once its blocks, their index entries
and its pin are on disk (fsynced); the pin list is replaced atomically and its
directory fsynced. The pin list is what garbage collection keeps, so one that
is missing (while blocks are stored), empty or unreadable stops every pin
change and every collection with a :class:`StoreError`, rather than being
taken for "nothing pinned" and losing every block. A new store starts with an
empty list, header included.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from offchain.crypto.atomic import atomic_write
from offchain.ipfs.blockstore import Blockstore
from offchain.ipfs.cid import CID, InvalidCID
from offchain.ipfs.dag import dag_multihashes, file_pieces
from offchain.ipfs.errors import NotPinned, StoreError
from offchain.ipfs.importer import CHUNK_SIZE, FileImporter
from offchain.ipfs.store import write_chunks
from offchain.settings import Settings


PINS_HEADER = "medshare-pins 1"
_NEW_PIN_LIST = (
    f"To start over with nothing pinned, write a file holding the line {PINS_HEADER!r} there, "
    "then pin again what must be kept."
)


class EmbeddedStore:
    """A :class:`~offchain.ipfs.store.Store` in a local folder, giving the same CIDs as Kubo."""

    def __init__(self, root: Path, *, workers: int = 2) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.blocks = Blockstore(self.root / "blocks")
        self._workers = workers
        if not self._pins_path.exists() and not self.blocks.root.exists():
            self._start_pin_list()

    @property
    def _pins_path(self) -> Path:
        return self.root / "pins"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> EmbeddedStore:
        """The store in the data folder (``$MEDSHARE_HOME/ipfs``)."""
        return cls((settings or Settings.from_env()).ipfs_dir)

    def add(self, stream: BinaryIO, *, cid_version: int = 1, only_hash: bool = False) -> CID:
        with self.writer(cid_version=cid_version, only_hash=only_hash) as importer:
            while chunk := stream.read(CHUNK_SIZE):
                importer.write(chunk)
        return importer.cid

    @contextmanager
    def writer(self, *, cid_version: int = 1, only_hash: bool = False) -> Iterator[FileImporter]:
        """Add a file by writing to it: ``with store.writer() as w: w.write(...)``, then ``w.cid``.

        For producers that write (e.g. a streaming encryptor) rather than
        offer a stream to read: the writer's thread only cuts chunks, while
        worker threads hash and store them. The file's new blocks go to one
        pack, listed and pinned when the block ends without error.
        """
        if only_hash:
            with FileImporter(cid_version=cid_version, workers=self._workers) as importer:
                yield importer
            return
        with self._lock("repo.lock", fcntl.LOCK_SH):
            with self.blocks.writer() as pack:
                with FileImporter(pack.put_many, cid_version=cid_version, workers=self._workers) as importer:
                    yield importer
            self._change_pins(add=importer.cid)

    def iter_cat(self, cid: CID) -> Iterator[bytes]:
        yield from file_pieces(self.blocks.get, cid)

    def cat(self, cid: CID, out: BinaryIO) -> int:
        return write_chunks(self.iter_cat(cid), out)

    def has(self, cid: CID) -> bool:
        return self.blocks.has(cid)

    def verify(self, cid: CID) -> None:
        for _ in self.iter_cat(cid):  # every block read and checked against its hash, nothing kept
            pass

    def pin(self, cid: CID) -> None:
        """Pin ``cid``; every block of its DAG must be stored."""
        with self._lock("repo.lock", fcntl.LOCK_SH):
            for _ in self._dag(cid):
                pass
            self._change_pins(add=cid)

    def unpin(self, cid: CID) -> None:
        self._change_pins(remove=cid)

    def pins(self) -> list[CID]:
        """The pinned CIDs; StoreError if the pin list is missing while blocks are stored, empty or unreadable."""
        path = self._pins_path
        try:
            lines = path.read_text().split("\n")
        except FileNotFoundError:
            if not self.blocks.root.exists() or next(self.blocks.multihashes(), None) is None:
                return []  # nothing stored, so nothing a pin list could have kept
            raise StoreError(
                f"the pin list {path} is missing, yet the store holds blocks; restore it from a backup "
                f"(pin changes and gc refuse to run without it, as gc would delete every block). {_NEW_PIN_LIST}"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(f"the pin list {path} cannot be read: {error}") from None
        if lines[0] == PINS_HEADER:
            lines = lines[1:]
        elif not lines[0].strip():
            # Not even the header: truncated, or zeroed, by a crash of an earlier version or a damaged disk.
            raise StoreError(f"the pin list {path} is empty, so it is damaged (gc would delete every block). "
                             + _NEW_PIN_LIST)
        try:
            return [CID.parse(line) for line in lines if line.strip()]
        except InvalidCID as error:
            raise StoreError(f"the pin list {path} is damaged: {error}") from None

    def gc(self) -> int:
        """Delete every block no pin reaches; returns how many were deleted.

        Refuses (StoreError) when the pin list is missing, empty or damaged.
        """
        with self._lock("repo.lock", fcntl.LOCK_EX):
            kept = {multihash for pinned in self.pins() for multihash in self._dag(pinned)}
            return self.blocks.retain(kept)

    def _dag(self, cid: CID) -> Iterator[bytes]:
        return dag_multihashes(self.blocks.get, self.blocks.has, cid)

    def _change_pins(self, *, add: CID | None = None, remove: CID | None = None) -> None:
        with self._lock("pins.lock", fcntl.LOCK_EX):
            pinned = self.pins()
            if remove is not None:
                if remove not in pinned:
                    raise NotPinned(remove)
                pinned.remove(remove)
            if add is not None and add not in pinned:
                pinned.append(add)
            self._write_pins(pinned)

    def _write_pins(self, pinned: list[CID], *, overwrite: bool = True) -> None:
        """Replace the pin list, durably: fsynced, renamed into place, its directory fsynced."""
        with atomic_write(self._pins_path, overwrite=overwrite) as file:
            file.write("".join(f"{line}\n" for line in [PINS_HEADER, *map(str, pinned)]).encode())

    def _start_pin_list(self) -> None:
        """A new store's empty pin list; never replaces one (another process may have pinned already)."""
        with self._lock("pins.lock", fcntl.LOCK_EX):
            try:
                self._write_pins([], overwrite=False)
            except FileExistsError:
                pass

    @contextmanager
    def _lock(self, name: str, mode: int) -> Iterator[None]:
        with open(self.root / name, "a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
