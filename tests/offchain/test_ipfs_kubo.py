"""The Kubo backend against a real daemon at IPFS_API; skipped when none answers there."""

import io
import ipaddress
import random
import socket

import pytest

from offchain.ipfs import CID, EmbeddedStore, KuboStore, NotPinned, Store, StoreError
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
def kubo() -> KuboStore:
    settings = Settings.from_env()
    if not on_loopback(settings.ipfs_api):  # tests reach nothing beyond this machine
        pytest.skip(f"IPFS_API {settings.ipfs_api} is not a loopback address; the Kubo tests only use a local node")
    store = KuboStore.from_settings(settings)
    try:
        store.version()
    except StoreError:
        pytest.skip(f"no Kubo daemon answers at {store.api} (set IPFS_API to test the Kubo backend)")
    return store


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
