"""The Pinning Service API client against mock-ipfs-pinning-service (npm, ipfs-shipyard's conformant
test server of the spec, the one Kubo's own `pin remote` tests run against), started on loopback.

The mock keeps pin requests in memory and takes a pin's status from its name's prefix
("pinned-…", "failed-…"; otherwise it stays "queued"), which is how these tests steer it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from offchain.ipfs import CID
from offchain.ipfs.consortium import Consortium, PinningService, pin_locations
from offchain.ipfs.daemon import DAEMON_FOLDER, free_port
from offchain.ipfs.pinning_service import PinningServiceClient, PinningServiceError

TOKEN = "test-token"
CID_A = CID.parse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
CID_B = CID.parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")

SERVE = """
const { setup } = require('mock-ipfs-pinning-service')
setup({ token: process.argv[1], loglevel: 'error' })
  .then(service => require('http').createServer(service).listen(Number(process.argv[2]), '127.0.0.1'))
"""

pytestmark = pytest.mark.sites



@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(["node", "-e", SERVE, TOKEN, str(port)], cwd=DAEMON_FOLDER,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/pins", timeout=2)
                break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mock-ipfs-pinning-service did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def client(endpoint) -> PinningServiceClient:
    return PinningServiceClient(endpoint, TOKEN, name="mock", timeout=10)


def test_a_pin_is_asked_for_read_listed_replaced_and_removed(client):
    asked = client.add(CID_A, name="pinned-scan", origins=("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQQHvopdHfS2hWJmqyUoFXtXLxR53ieexh7DuhZmMudyy",),
                       meta={"study": "7"})
    assert asked.cid == CID_A and asked.status == "pinned" and asked.name == "pinned-scan"
    assert client.get(asked.requestid) == asked
    assert client.wait(asked.requestid, timeout=5) == asked
    assert [pin.requestid for pin in client.list(cids=(CID_A,))] == [asked.requestid]
    assert client.status(CID_A).status == "pinned"
    replaced = client.replace(asked.requestid, CID_B, name="pinned-scan-v2")
    assert replaced.cid == CID_B
    assert client.status(CID_A) is None
    client.remove(replaced.requestid)
    assert client.status(CID_B) is None
    with pytest.raises(PinningServiceError, match="answered 404"):
        client.get(replaced.requestid)


def test_a_list_filters_by_status(client):
    queued = client.add(CID_A, name="waiting")
    failed = client.add(CID_B, name="failed-on-purpose")
    try:
        assert client.list(cids=(CID_A,)) == []  # the spec's default: pinned only
        assert [pin.status for pin in client.list(cids=(CID_A,), statuses=("queued",))] == ["queued"]
        with pytest.raises(PinningServiceError, match="failed to pin"):
            client.wait(failed.requestid, timeout=5)
        with pytest.raises(PinningServiceError, match=r"has not pinned .* in 1 s \(still queued\)"):
            client.wait(queued.requestid, timeout=1, poll=0.2)
    finally:
        client.remove(queued.requestid)
        client.remove(failed.requestid)


def test_a_wrong_token_is_refused_with_the_services_reason(endpoint):
    with pytest.raises(PinningServiceError, match="mock: GET /pins answered 401"):
        PinningServiceClient(endpoint, "wrong", name="mock").list()


@pytest.mark.parametrize("call, message", [
    (lambda c: c.list(statuses=("done",)), "pin statuses must be among"),
    (lambda c: c.list(limit=0), "limit must be 1 to 1000"),
    (lambda c: c.add(CID_A, name="x" * 256), "at most 255 characters"),
    (lambda c: c.get("../pins"), "not a pin request id"),
])
def test_bad_arguments_are_refused_before_any_request(call, message):
    client = PinningServiceClient("http://127.0.0.1:9", TOKEN, name="nowhere")
    with pytest.raises(ValueError, match=message):
        call(client)


def test_an_unreachable_or_unset_service_is_one_clear_error(monkeypatch, endpoint):
    with pytest.raises(PinningServiceError, match="not an http"):
        PinningServiceClient("ftp://x", TOKEN)
    monkeypatch.delenv("MEDSHARE_PIN_TOKEN", raising=False)
    service = PinningService("hosted", endpoint, "MEDSHARE_PIN_TOKEN")
    with pytest.raises(PinningServiceError, match="set MEDSHARE_PIN_TOKEN"):
        service.client()
    monkeypatch.setenv("MEDSHARE_PIN_TOKEN", TOKEN)
    [where] = pin_locations(CID_A, None, Consortium(pinning_services=(service,)))
    assert (where.name, where.pinned) == ("hosted", False)
    pinned = service.client().add(CID_A, name="pinned-by-service")
    try:
        [where] = pin_locations(CID_A, None, Consortium(pinning_services=(service,)))
        assert (where.name, where.pinned, where.detail) == ("hosted", True, "pinned")
    finally:
        service.client().remove(pinned.requestid)
