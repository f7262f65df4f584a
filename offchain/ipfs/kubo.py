"""A store backed by an operator's Kubo node, through its HTTP RPC API.

Uses ``ipfshttpclient.Client(addr)`` directly: ``ipfshttpclient.connect()``
refuses Kubo releases after 0.7 by a version check. Imports use the same
options as the embedded store, so both give the same CIDs.

The daemon is not trusted with content: an add computes the CID locally with
our importer as the bytes stream to the daemon, and refuses an answer that
differs; a read fetches the file block by block (``block/get``, a few blocks
in flight at once) and checks each block against its CID, as the embedded
store checks its disk.

Every call is bounded. The client's HTTP timeout bounds each request, and
calls that may make the daemon wait for the network (``block/get`` of a block
it lacks, ``pin/add`` of a DAG held elsewhere, ``block/stat``) also pass
Kubo's global ``timeout`` option, so the daemon itself gives up too.

Written to Kubo's documented RPC. Where the daemon we can run here, js-ipfs
0.66 (:mod:`offchain.ipfs.daemon`), differs, the code follows Kubo and says
so where it matters; in short: js-ipfs ignores ``offline=true`` on
``block/stat`` and asks its peers for a block it lacks (the ``timeout`` option
bounds that), and words its errors differently.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO

import ipfshttpclient
import requests
from ipfshttpclient.exceptions import Error as ClientError
from ipfshttpclient.exceptions import ErrorResponse

from offchain.ipfs.cid import CID, DAG_PB, InvalidCID
from offchain.ipfs.dag import check_block, child_cid, file_node, file_pieces
from offchain.ipfs.errors import BlockNotFound, NodeUnreachable, NotAFile, NotPinned, StoreError
from offchain.ipfs.importer import CHUNK_SIZE, FileImporter
from offchain.ipfs.store import write_chunks
from offchain.settings import DEFAULT_IPFS_API, Settings


HAS_TIMEOUT_SECONDS = 2.0  # js-ipfs only: how long has() lets it look for a block it lacks (Kubo answers at once)
FETCH_TIMEOUT_SECONDS = 60.0  # how long the daemon may look for one block among its peers
PIN_TIMEOUT_SECONDS = 600.0  # how long a pin/add may take to fetch a whole DAG from its peers
READ_AHEAD_BLOCKS = 8  # block/get requests in flight while a file is read


class KuboStore:
    """A :class:`~offchain.ipfs.store.Store` on a Kubo node's API (``IPFS_API``, loopback by default).

    ``timeout`` bounds each HTTP request that does not wait on the network;
    ``fetch_timeout`` how long the daemon may look for a block among its peers;
    ``pin_timeout`` how long a pin may take to fetch a DAG.
    """

    def __init__(self, api: str = DEFAULT_IPFS_API, *, timeout: float = 120,
                 fetch_timeout: float = FETCH_TIMEOUT_SECONDS, pin_timeout: float = PIN_TIMEOUT_SECONDS) -> None:
        self.api = api
        self.timeout = timeout
        self.fetch_timeout = fetch_timeout
        self.pin_timeout = pin_timeout
        self._kubo: bool | None = None  # whether the daemon is Kubo, once asked (see has())
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
        with _ReadAhead(self._block) as blocks:
            yield from file_pieces(blocks.get, cid)

    def verify(self, cid: CID) -> None:
        """Every byte of ``cid`` checked against it.

        First as an add is checked: the daemon's own ``cat`` (which fetches the DAG from its peers
        many blocks at once, where ``block/get`` asks for one at a time) imported again here; the
        same CID proves every byte. A file another tool chunked differently gives another CID, and
        a ``cat`` that fails or stalls proves nothing: then the DAG is walked block by block, each
        block checked, which also names the block that is missing or wrong.
        """
        if self._cat_reimports_to(cid):
            return
        for _ in self.iter_cat(cid):
            pass

    def _cat_reimports_to(self, cid: CID) -> bool:
        """Whether the daemon's ``cat`` of ``cid`` imports to ``cid`` (read up to its declared size)."""
        if cid.codec != DAG_PB:
            return False  # one raw block: the walk is one block/get
        try:
            declared = file_node(cid, self._block(cid)).filesize
        except NotAFile:
            return False
        if declared is None:
            return False
        received = 0
        with FileImporter(cid_version=cid.version) as ours:
            try:
                with self._kubo_errors():
                    # No daemon-side timeout: it would bound the whole file. The HTTP timeout bounds
                    # each read, so a daemon that stalls on a block it cannot find is given up on.
                    pieces = self._client._client.request("/cat", (str(cid),), stream=True,
                                                          timeout=self.fetch_timeout)
                    for piece in pieces:
                        received += len(piece)
                        if received > declared:
                            return False
                        ours.write(piece)
            except NodeUnreachable:
                raise
            except (StoreError, OSError, requests.RequestException):
                return False
        return received == declared and ours.cid == cid

    def _block(self, cid: CID) -> bytes:
        """One block from the daemon (from its peers if it lacks it, within ``fetch_timeout``), checked."""
        with self._kubo_errors(missing=cid):
            block = self._client.block.get(str(cid), **self._bounded(self.fetch_timeout))
        return check_block(cid, bytes(block), f"Kubo at {self.api}")

    def _bounded(self, seconds: float) -> dict:
        """A request's arguments that bound it to ``seconds``: Kubo's global ``timeout`` option, which
        makes the daemon give up, and an HTTP timeout a little longer, in case a daemon does not."""
        return {"opts": {"timeout": f"{seconds:g}s"}, "timeout": seconds + 10}

    def cat(self, cid: CID, out: BinaryIO) -> int:
        return write_chunks(self.iter_cat(cid), out)

    def has(self, cid: CID) -> bool:
        """Whether the daemon holds the block itself, without asking its peers.

        Kubo: ``block/stat`` with ``offline=true`` answers from the local blockstore at once ("block was
        not found locally (offline)"). js-ipfs 0.66 ignores ``offline`` there and asks its connected peers
        for a block it lacks (so a "has" would fetch it), and offers no other local lookup by CID; on a
        daemon that is not Kubo the answer comes from ``refs/local`` (every local block, by its multihash:
        a scan, fine for a test node, which is all js-ipfs serves here). Both are bounded by
        ``HAS_TIMEOUT_SECONDS`` (Kubo's ``timeout`` option) or the HTTP timeout.
        """
        if not self._is_kubo():
            return self._in_local_refs(cid)
        with self._kubo_errors():
            try:
                self._client.block.stat(str(cid), offline=True, **self._bounded(HAS_TIMEOUT_SECONDS))
            except ErrorResponse:
                return False
        return True

    def _is_kubo(self) -> bool:
        """Whether the daemon is Kubo: its ``version`` names the Go release it was built with ("Golang")."""
        if self._kubo is None:
            with self._kubo_errors():
                self._kubo = "Golang" in self._client.version()
        return self._kubo

    def _in_local_refs(self, cid: CID) -> bool:
        with self._kubo_errors():
            for ref in self._client._client.request("/refs/local", (), decoder="json", stream=True,
                                                    timeout=self.timeout):
                if _parsed(ref.get("Ref")) is not None and _parsed(ref["Ref"]).multihash == cid.multihash:
                    return True
        return False

    def pin(self, cid: CID) -> None:
        """Pin ``cid`` recursively; the daemon fetches what it lacks from its peers within ``pin_timeout``."""
        with self._kubo_errors(missing=cid):
            self._client.pin.add(str(cid), **self._bounded(self.pin_timeout))

    def pinned(self, cid: CID) -> bool:
        """Whether ``cid`` is pinned recursively here (the pin an add or a pin makes); local on both daemons."""
        with self._kubo_errors():
            try:
                listed = self._client.pin.ls(str(cid), type="recursive", **self._bounded(HAS_TIMEOUT_SECONDS))
            except ErrorResponse as error:
                if "not pinned" in str(error):  # Kubo: "path '…' is not pinned"; js-ipfs: "… is not pinned"
                    return False
                raise
        return str(cid) in listed.get("Keys", {}) or any(_parsed(key) == cid for key in listed.get("Keys", {}))

    def peer_id(self) -> str:
        """The node's libp2p peer ID."""
        with self._kubo_errors():
            return self._client.id()["ID"]

    def connect(self, *addresses: str) -> None:
        """Dial peers by multiaddr (``/ip4/…/tcp/…/p2p/ID``): ``swarm/connect``, bounded.

        One address a call: Kubo takes several ``arg``s, js-ipfs 0.66 refuses more than one. Sent as a
        plain request: ipfshttpclient 0.7's ``swarm.connect`` sends each character of its first address
        as one more ``arg``."""
        for address in addresses:
            with self._kubo_errors():
                self._client._client.request("/swarm/connect", (address,), decoder="json", **self._bounded(10))

    def peers(self) -> list[str]:
        """The peer IDs the node is connected to."""
        with self._kubo_errors():
            listed = self._client.swarm.peers()
        # Kubo: {"Peers": [{"Addr", "Peer"}, …]} (null with none); js-ipfs the same shape.
        return [entry["Peer"] for entry in (listed.get("Peers") or [])]

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
    def _kubo_errors(self, missing: CID | None = None) -> Iterator[None]:
        """Client and daemon failures as StoreErrors naming the node; a call for ``missing`` that ran
        out of time looking for it is BlockNotFound."""
        try:
            yield
        except ClientError as error:
            if missing is not None and _timed_out(error):
                raise BlockNotFound(missing, f"Kubo at {self.api} did not find it, locally or among its "
                                             f"connected peers, in time ({error})") from error
            if isinstance(error, ipfshttpclient.exceptions.ConnectionError):
                raise NodeUnreachable(f"Kubo at {self.api}: {error}") from error
            raise StoreError(f"Kubo at {self.api}: {error}") from error


def _timed_out(error: ClientError) -> bool:
    """Whether the daemon (Kubo: "context deadline exceeded"; js-ipfs: "request timed out") or the HTTP
    client gave up waiting."""
    text = str(error).lower()
    return isinstance(error, ipfshttpclient.exceptions.TimeoutError) or any(
        words in text for words in ("deadline exceeded", "timed out", "timeout", "aborted"))


class _ReadAhead:
    """A block source for ``file_pieces`` that keeps the next blocks of the walk in flight.

    ``file_pieces`` asks for blocks depth-first, one at a time; each round trip to the daemon (and, for a
    block it lacks, to its peers) would otherwise stand in line. When a node is read its links are put
    at the front of the walk's queue, so the queue holds the blocks in the order they will be asked for,
    and the first ``READ_AHEAD_BLOCKS`` of them are fetched (and hash-checked) on worker threads.
    """

    def __init__(self, fetch, window: int = READ_AHEAD_BLOCKS) -> None:
        self._fetch = fetch
        self._window = window
        self._queue: deque[CID] = deque()
        self._flying: dict[CID, Future[bytes]] = {}
        self._pool = ThreadPoolExecutor(max_workers=window, thread_name_prefix="kubo-read")

    def get(self, cid: CID) -> bytes:
        if self._queue and self._queue[0] == cid:
            self._queue.popleft()
        future = self._flying.pop(cid, None) or self._pool.submit(self._fetch, cid)
        block = future.result()
        if cid.codec == DAG_PB:
            try:
                links = [child_cid(cid, link) for link in file_node(cid, block).links]
            except NotAFile:
                links = []  # file_pieces reports it, as it parses the node itself
            self._queue.extendleft(reversed(links))
        for upcoming in list(self._queue)[: self._window]:
            if upcoming not in self._flying:
                self._flying[upcoming] = self._pool.submit(self._fetch, upcoming)
        return block

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self._flying.values():
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)


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
