"""The Kubo backend: against a real daemon, and its checks against a lying test double of the daemon's API
(FakeKubo). No Kubo binary can be had here: the daemon is js-ipfs (tools/ipfs-daemon, installed by the
bootstrap), started on loopback in a temporary repository, unless IPFS_API names a loopback node to test."""

import email.parser
import http.server
import io
import ipaddress
import json
import random
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from offchain.ipfs import CID, BlockNotFound, CorruptBlock, EmbeddedStore, KuboStore, NotPinned, Store, StoreError
from offchain.ipfs.daemon import LocalDaemon
from offchain.ipfs.kubo import HAS_TIMEOUT_SECONDS
from offchain.settings import Settings

CHUNK = 262_144


def on_loopback(api: str) -> bool:
    """Whether a Kubo API multiaddr (``/ip4/127.0.0.1/tcp/5001/http``) names this machine's loopback."""
    protocol, _, rest = api.strip("/").partition("/")
    host = rest.partition("/")[0]
    if protocol in ("dns", "dns4", "dns6"):
        return host == "localhost"
    try:
        return protocol in ("ip4", "ip6") and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.mark.parametrize(
    "api, loopback",
    [
        ("/ip4/127.0.0.1/tcp/5001/http", True),
        ("/ip4/127.3.2.1/tcp/5001/http", True),
        ("/ip6/::1/tcp/5001/http", True),
        ("/dns/localhost/tcp/5001/http", True),
        ("/ip4/10.0.0.5/tcp/5001/http", False),
        ("/ip4/0.0.0.0/tcp/5001/http", False),
        ("/dns4/ipfs.example.org/tcp/443/https", False),
        ("/ip4/not-an-address/tcp/5001", False),
    ],
)
def test_only_a_loopback_api_is_tested(api, loopback):
    assert on_loopback(api) is loopback


@pytest.fixture(scope="module")
def kubo(tmp_path_factory) -> Iterator[KuboStore]:
    """The node at IPFS_API if set (it must be on loopback), else a js-ipfs daemon of this module's own."""
    if os.environ.get("IPFS_API"):
        settings = Settings.from_env()
        if not on_loopback(settings.ipfs_api):  # tests reach nothing beyond this machine
            pytest.fail(f"IPFS_API {settings.ipfs_api} is not a loopback address; the Kubo tests only use a local node")
        store = KuboStore.from_settings(settings)
        store.version()
        yield store
        return
    with LocalDaemon(tmp_path_factory.mktemp("kubo-node")) as daemon:
        yield KuboStore(daemon.api, timeout=60, fetch_timeout=5)


def test_it_is_a_store():
    assert issubclass(KuboStore, Store)


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [0, 1, CHUNK + 1, 175 * CHUNK])
def test_kubo_gives_the_embedded_cid_and_cats_it_back(kubo, tmp_path, version, size):
    data = random.Random(size).randbytes(size)
    cid = kubo.add(io.BytesIO(data), cid_version=version)
    assert cid == EmbeddedStore(tmp_path).add(io.BytesIO(data), cid_version=version, only_hash=True)
    assert kubo.has(cid)
    out = io.BytesIO()
    assert kubo.cat(cid, out) == size
    assert out.getvalue() == data


@pytest.mark.parametrize("version", [0, 1])
def test_a_file_chunked_by_another_tool_is_verified_block_by_block(kubo, tmp_path, version):
    """Another tool's chunking gives another CID from our importer, so the daemon's cat proves nothing;
    the walk checks each block instead."""
    data = random.Random(version).randbytes(5000)
    added = kubo._client.add(io.BytesIO(data), cid_version=version, raw_leaves=version == 1, chunker="size-1000")
    cid = CID.parse(added["Hash"])
    assert cid != EmbeddedStore(tmp_path).add(io.BytesIO(data), cid_version=version, only_hash=True)
    kubo.verify(cid)
    out = io.BytesIO()
    assert kubo.cat(cid, out) == len(data) and out.getvalue() == data


def test_kubo_pins(kubo):
    cid = kubo.add(io.BytesIO(b"pinned on kubo"))
    assert cid in kubo.pins()
    kubo.unpin(cid)
    assert cid not in kubo.pins()
    with pytest.raises(NotPinned):
        kubo.unpin(cid)
    kubo.pin(cid)
    assert cid in kubo.pins()


def test_kubo_writer_adds_what_is_written_and_nothing_on_error(kubo, tmp_path):
    data = random.Random(7).randbytes(3 * CHUNK + 5)
    with kubo.writer() as sink:
        for start in range(0, len(data), 100_000):
            sink.write(data[start : start + 100_000])
    assert sink.cid == EmbeddedStore(tmp_path).add(io.BytesIO(data), only_hash=True)
    with pytest.raises(RuntimeError), kubo.writer() as failed:
        failed.write(b"half a file")
        raise RuntimeError("producer failed")
    assert failed.cid is None


def test_only_hash_stores_nothing_on_kubo(kubo):
    cid = kubo.add(io.BytesIO(random.randbytes(64)), only_hash=True)
    assert not kubo.has(cid)


def test_a_missing_block_is_answered_within_bounds(kubo):
    """js-ipfs ignores offline=true and would look for the block among its peers for ever: has() and a
    read are bounded by Kubo's timeout option (the store's fetch_timeout), and say what is missing."""
    missing = kubo.add(io.BytesIO(os.urandom(64)), only_hash=True)
    start = time.monotonic()
    assert not kubo.has(missing)
    assert time.monotonic() - start < HAS_TIMEOUT_SECONDS + 5
    assert not kubo.pinned(missing)
    start = time.monotonic()
    with pytest.raises(BlockNotFound, match=f"block {missing} is not in the store: Kubo at {kubo.api}"):
        kubo.cat(missing, io.BytesIO())
    assert time.monotonic() - start < kubo.fetch_timeout + 10


def test_kubo_names_its_peer_and_pins_by_cid(kubo):
    cid = kubo.add(io.BytesIO(b"pinned, asked by CID"))
    assert kubo.pinned(cid)
    kubo.unpin(cid)
    assert not kubo.pinned(cid)
    assert kubo.peer_id().startswith(("12D3Koo", "Qm"))


@pytest.fixture
def unreachable() -> KuboStore:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return KuboStore(f"/ip4/127.0.0.1/tcp/{port}/http", timeout=5)


CID_EXAMPLE = CID.parse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.version(),
        lambda store: store.add(io.BytesIO(b"x")),
        lambda store: store.add(io.BytesIO(b"x"), cid_version=0, only_hash=True),
        lambda store: store.cat(CID_EXAMPLE, io.BytesIO()),
        lambda store: store.has(CID_EXAMPLE),
        lambda store: store.pin(CID_EXAMPLE),
        lambda store: store.unpin(CID_EXAMPLE),
        lambda store: store.pins(),
    ],
    ids=["version", "add", "add-v0-only-hash", "cat", "has", "pin", "unpin", "pins"],
)
def test_every_call_to_an_unreachable_node_is_a_store_error_naming_it(unreachable, call):
    with pytest.raises(StoreError, match=f"Kubo at {unreachable.api}"):
        call(unreachable)


@pytest.mark.parametrize("address", ["garbage", "http://127.0.0.1:5001", "/ip4/127.0.0.1/udp/5001"])
def test_a_malformed_address_is_a_store_error_naming_it(address):
    with pytest.raises(StoreError, match=f"Kubo at {address}: Unsupported Multiaddr pattern"):
        KuboStore(address)


def test_kubo_refuses_bad_cid_versions_before_calling_the_node(unreachable):
    with pytest.raises(ValueError, match="CID version must be 0 or 1"):
        unreachable.add(io.BytesIO(b"x"), cid_version=2)


# A daemon that lies ------------------------------------------------------------------------------------------------


class FakeKubo(http.server.ThreadingHTTPServer):
    """A test double of a Kubo daemon: the few RPC endpoints KuboStore calls, served on 127.0.0.1.

    No Kubo binary can be had on this machine, so the checks that must not trust the daemon are tested
    against this real HTTP server instead. It keeps blocks in a real embedded store (so its honest answers
    are Kubo's CIDs and blocks) and lies on demand: ``lie_cid`` answers an add with another file's CID,
    and ``lie_block`` returns blocks with one byte changed.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), FakeKuboHandler)
        self.store = EmbeddedStore(root)
        self.lie_cid = self.lie_block = False
        self.lie_cat = b""  # bytes a cat adds to the file's
        self.calls: list[str] = []

    @property
    def api(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.server_address[1]}/http"


class FakeKuboHandler(http.server.BaseHTTPRequestHandler):
    server: FakeKubo

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        endpoint = url.path.removeprefix("/api/v0/")
        query = urllib.parse.parse_qs(url.query)
        self.server.calls.append(endpoint)
        arg = query.get("arg", [""])[0]
        handler = getattr(self, "_" + endpoint.replace("/", "_"), None)
        body = self._body()
        if handler is None:
            return self._reply(404, {"Message": f"no endpoint {endpoint}", "Code": 0, "Type": "error"})
        try:
            handler(arg, query, body)
        except StoreError as error:
            self._reply(500, {"Message": str(error), "Code": 0, "Type": "error"})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    self.rfile.readline()
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, payload: dict | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _version(self, arg, query, body) -> None:
        self._reply(200, {"Version": "0.0.0-test-double", "Golang": "go1.22"})  # as Kubo answers

    def _add(self, arg, query, body) -> None:
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        (part,) = message.get_payload()
        data = part.get_payload(decode=True)
        version = int(query["cid-version"][0])
        only_hash = query.get("only-hash", ["false"])[0].lower() == "true"
        if self.server.lie_cid:
            data += b" and something else"
        cid = self.server.store.add(io.BytesIO(data), cid_version=version, only_hash=only_hash)
        self._reply(200, {"Name": "file", "Hash": str(cid), "Size": str(len(data))})

    def _block_get(self, arg, query, body) -> None:
        block = bytearray(self.server.store.blocks.get(CID.parse(arg)))
        if self.server.lie_block and block:
            block[len(block) // 2] ^= 1
        self._reply(200, bytes(block))

    def _cat(self, arg, query, body) -> None:
        out = io.BytesIO()
        self.server.store.cat(CID.parse(arg), out)
        data = out.getvalue()
        if self.server.lie_cat:
            data = data[: -len(self.server.lie_cat)] + self.server.lie_cat if len(data) > 1 else self.server.lie_cat
        self._reply(200, data)

    def _block_stat(self, arg, query, body) -> None:
        if not self.server.store.has(CID.parse(arg)):
            return self._reply(500, {"Message": "block was not found locally (offline)", "Code": 0, "Type": "error"})
        self._reply(200, {"Key": arg, "Size": len(self.server.store.blocks.get(CID.parse(arg)))})

    def _pin_add(self, arg, query, body) -> None:
        self.server.store.pin(CID.parse(arg))
        self._reply(200, {"Pins": [arg]})

    def _pin_rm(self, arg, query, body) -> None:
        try:
            self.server.store.unpin(CID.parse(arg))
        except NotPinned:
            return self._reply(500, {"Message": "not pinned or pinned indirectly", "Code": 0, "Type": "error"})
        self._reply(200, {"Pins": [arg]})

    def _pin_ls(self, arg, query, body) -> None:
        self._reply(200, {"Keys": {str(cid): {"Type": "recursive"} for cid in self.server.store.pins()}})


@pytest.fixture
def fake_kubo(tmp_path) -> Iterator[FakeKubo]:
    server = FakeKubo(tmp_path / "daemon")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("version", [0, 1])
def test_an_honest_daemon_round_trips_through_the_checks(fake_kubo, tmp_path, version):
    store = KuboStore(fake_kubo.api, timeout=30)
    data = random.Random(version).randbytes(3 * CHUNK + 17)
    cid = store.add(io.BytesIO(data), cid_version=version)
    assert cid == EmbeddedStore(tmp_path / "oracle").add(io.BytesIO(data), cid_version=version, only_hash=True)
    out = io.BytesIO()
    assert store.cat(cid, out) == len(data) and out.getvalue() == data
    store.verify(cid)
    assert cid in store.pins() and store.has(cid)
    with store.writer(cid_version=version) as sink:
        sink.write(data)
    assert sink.cid == cid


@pytest.mark.parametrize("only_hash", [False, True])
def test_an_add_answered_with_a_wrong_cid_is_refused_and_unpinned(fake_kubo, tmp_path, only_hash):
    store = KuboStore(fake_kubo.api, timeout=30)
    fake_kubo.lie_cid = True
    data = random.Random(5).randbytes(CHUNK + 1)
    expected = EmbeddedStore(tmp_path / "oracle").add(io.BytesIO(data), only_hash=True)
    with pytest.raises(StoreError, match=f"Kubo at {store.api} answered CID .* for content whose CID is {expected}"):
        store.add(io.BytesIO(data), only_hash=only_hash)
    assert fake_kubo.store.pins() == []  # the node's pin of its wrong answer is dropped
    with pytest.raises(StoreError, match="answered CID"), store.writer() as sink:
        sink.write(data)


@pytest.mark.parametrize("version", [0, 1])
def test_a_daemon_returning_wrong_bytes_is_caught_on_cat_and_verify(fake_kubo, version):
    store = KuboStore(fake_kubo.api, timeout=30)
    data = random.Random(9).randbytes(2 * CHUNK + 3)
    cid = store.add(io.BytesIO(data), cid_version=version)
    fake_kubo.lie_block = True
    with pytest.raises(CorruptBlock, match=f"is corrupt: its content at Kubo at {store.api}"):
        store.cat(cid, io.BytesIO())
    assert "cat" not in fake_kubo.calls  # bytes come block by block, each checked
    with pytest.raises(CorruptBlock):
        store.verify(cid)


@pytest.mark.parametrize("lie", [b"\x00", b"\x00" * 10, b"\x00" * (CHUNK + 1)], ids=["changed", "longer", "far-longer"])
def test_verify_trusts_the_daemons_cat_only_when_it_imports_to_the_cid(fake_kubo, lie):
    store = KuboStore(fake_kubo.api, timeout=30)
    data = random.Random(11).randbytes(2 * CHUNK + 3)
    cid = store.add(io.BytesIO(data))
    fake_kubo.calls.clear()
    store.verify(cid)
    assert fake_kubo.calls == ["block/get", "cat"]  # the root's declared size, then one cat, imported again
    fake_kubo.calls.clear()
    fake_kubo.lie_cat = lie
    store.verify(cid)  # the cat proves nothing; the blocks, each checked, are sound
    assert fake_kubo.calls.count("block/get") == 2 + 3 and "cat" in fake_kubo.calls  # the root twice, 3 leaves
    fake_kubo.lie_block = True
    with pytest.raises(CorruptBlock):
        store.verify(cid)
