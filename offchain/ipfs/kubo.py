"""A store backed by an operator's Kubo node, through its HTTP RPC API.

Uses ``ipfshttpclient.Client(addr)`` directly: ``ipfshttpclient.connect()``
refuses Kubo releases after 0.7 by a version check. Imports use the same
options as the embedded store, so both give the same CIDs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import ipfshttpclient
from ipfshttpclient.exceptions import Error as ClientError
from ipfshttpclient.exceptions import ErrorResponse

from offchain.ipfs.cid import CID
from offchain.ipfs.errors import NotPinned, StoreError
from offchain.ipfs.importer import CHUNK_SIZE
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
        with self._kubo_errors():
            added = self._client.add(
                stream,
                cid_version=cid_version,
                raw_leaves=cid_version == 1,
                chunker=f"size-{CHUNK_SIZE}",
                only_hash=only_hash,
                pin=not only_hash,
            )
        return CID.parse(added["Hash"])

    @contextmanager
    def writer(self, *, cid_version: int = 1) -> Iterator[_SpooledAdd]:
        """Add what is written in the block; spooled to a temporary file, as the API takes whole uploads."""
        with tempfile.TemporaryFile() as spool:
            sink = _SpooledAdd(spool)
            yield sink
            spool.seek(0)
            sink.cid = self.add(spool, cid_version=cid_version)

    def iter_cat(self, cid: CID) -> Iterator[bytes]:
        with self._kubo_errors():
            yield from self._client.cat(str(cid), stream=True)

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

    @contextmanager
    def _kubo_errors(self) -> Iterator[None]:
        """Client and daemon failures as StoreErrors naming the node."""
        try:
            yield
        except ClientError as error:
            raise StoreError(f"Kubo at {self.api}: {error}") from error


class _SpooledAdd:
    """The writer ``KuboStore.writer()`` yields; ``cid`` is set once the add is done."""

    def __init__(self, spool: BinaryIO) -> None:
        self._spool = spool
        self.cid: CID | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._spool.write(data)
