"""A store backed by an operator's Kubo node, through its HTTP RPC API.

Uses ``ipfshttpclient.Client(addr)`` directly: ``ipfshttpclient.connect()``
refuses Kubo releases after 0.7 by a version check. Imports use the same
options as the embedded store, so both give the same CIDs.

The daemon is not trusted with content: an add computes the CID locally with
our importer as the bytes stream to the daemon, and refuses an answer that
differs; a read fetches the file block by block (``block/get``) and checks
each block against its CID, as the embedded store checks its disk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import BinaryIO

import ipfshttpclient
from ipfshttpclient.exceptions import Error as ClientError
from ipfshttpclient.exceptions import ErrorResponse

from offchain.ipfs.cid import CID, InvalidCID
from offchain.ipfs.dag import check_block, file_pieces
from offchain.ipfs.errors import NotPinned, StoreError
from offchain.ipfs.importer import CHUNK_SIZE, FileImporter
from offchain.ipfs.store import write_chunks
from offchain.settings import DEFAULT_IPFS_API, Settings


class KuboStore:
    """A :class:`~offchain.ipfs.store.Store` on a Kubo node's API (``IPFS_API``, loopback by default)."""

    def __init__(self, api: str = DEFAULT_IPFS_API, *, timeout: float = 120) -> None:
        self.api = api
        with self._kubo_errors():  # a malformed address is refused here, before any request
            self._client = ipfshttpclient.Client(api, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> KuboStore:
        """The node at ``IPFS_API``."""
        return cls((settings or Settings.from_env()).ipfs_api)

    def version(self) -> str:
        """The node's Kubo version (also a cheap check that it answers)."""
        with self._kubo_errors():
            return self._client.version()["Version"]

    def add(self, stream: BinaryIO, *, cid_version: int = 1, only_hash: bool = False) -> CID:
        if cid_version not in (0, 1):
            raise ValueError(f"CID version must be 0 or 1, not {cid_version}")
        with FileImporter(cid_version=cid_version) as ours:
            with self._kubo_errors():
                added = self._client.add(
                    _Tee(stream, ours),
                    cid_version=cid_version,
                    raw_leaves=cid_version == 1,
                    chunker=f"size-{CHUNK_SIZE}",
                    only_hash=only_hash,
                    pin=not only_hash,
                )
        expected = ours.cid
        answered = added.get("Hash") if isinstance(added, Mapping) else None
        if answered != str(expected) and _parsed(answered) != expected:
            if not only_hash and _parsed(answered) is not None:
                self._drop_pin(answered)
            raise StoreError(
                f"Kubo at {self.api} answered CID {answered} for content whose CID is {expected}; "
                "the node is not trusted with this content"
            )
        return expected

    @contextmanager
    def writer(self, *, cid_version: int = 1) -> Iterator[_SpooledAdd]:
        """Add what is written in the block; spooled to a temporary file, as the API takes whole uploads."""
        with tempfile.TemporaryFile() as spool:
            sink = _SpooledAdd(spool)
            yield sink
            spool.seek(0)
            sink.cid = self.add(spool, cid_version=cid_version)

    def iter_cat(self, cid: CID) -> Iterator[bytes]:
        yield from file_pieces(self._block, cid)

    def verify(self, cid: CID) -> None:
        for _ in self.iter_cat(cid):
            pass

    def _block(self, cid: CID) -> bytes:
        """One block from the daemon, checked against its CID."""
        with self._kubo_errors():
            block = self._client.block.get(str(cid))
        return check_block(cid, bytes(block), f"Kubo at {self.api}")

    def cat(self, cid: CID, out: BinaryIO) -> int:
        return write_chunks(self.iter_cat(cid), out)

    def has(self, cid: CID) -> bool:
        with self._kubo_errors():
            try:
                self._client.block.stat(str(cid), offline=True)
            except ErrorResponse:  # Kubo answers "block was not found locally (offline)"
                return False
        return True

    def pin(self, cid: CID) -> None:
        with self._kubo_errors():
            self._client.pin.add(str(cid))

    def unpin(self, cid: CID) -> None:
        with self._kubo_errors():
            try:
                self._client.pin.rm(str(cid))
            except ErrorResponse as error:
                if "not pinned" in str(error):  # Kubo: "not pinned or pinned indirectly"
                    raise NotPinned(cid) from error
                raise

    def pins(self) -> list[CID]:
        with self._kubo_errors():
            listed = self._client.pin.ls(type="recursive")
        return [CID.parse(key) for key in listed["Keys"]]

    def _drop_pin(self, answered: str) -> None:
        try:
            with self._kubo_errors():
                self._client.pin.rm(answered)
        except (StoreError, ErrorResponse):
            pass  # the node misbehaves already; its pin of its own answer is its business

    @contextmanager
    def _kubo_errors(self) -> Iterator[None]:
        """Client and daemon failures as StoreErrors naming the node."""
        try:
            yield
        except ClientError as error:
            raise StoreError(f"Kubo at {self.api}: {error}") from error


def _parsed(text: object) -> CID | None:
    try:
        return CID.parse(text) if isinstance(text, str) else None
    except InvalidCID:
        return None


class _Tee:
    """A readable stream that feeds our importer every byte the client reads, to check the daemon's CID."""

    def __init__(self, source: BinaryIO, importer: FileImporter) -> None:
        self._source = source
        self._importer = importer

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._importer.write(data)
        return data


class _SpooledAdd:
    """The writer ``KuboStore.writer()`` yields; ``cid`` is set once the add is done."""

    def __init__(self, spool: BinaryIO) -> None:
        self._spool = spool
        self.cid: CID | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._spool.write(data)
