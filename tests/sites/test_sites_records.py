"""A record moves between hospitals over the IPFS network: uploaded at site A through A's own node,
replicated to the consortium's pinning node, fetched and decrypted at site B through B's own node, with
A alive and with A stopped. Each site has its own home (keystore, index) and its own daemon."""

from __future__ import annotations

import io
import os

import pytest
from click.testing import CliRunner

from offchain.chain.access import AccessClient
from offchain.cli import main as medshare
from offchain.cli.session import record_service
from offchain.ipfs import CID, KuboStore, open_store
from offchain.ipfs.consortium import Consortium, PinningNode, ReplicationError, SiteStore, pin_locations
from offchain.ipfs.daemon import free_port
from offchain.consortium import ensure_published_key

PASSPHRASE = "site passphrase"

pytestmark = pytest.mark.sites



@pytest.fixture(scope="module", autouse=True)
def _passphrase():
    os.environ["MEDSHARE_PASSPHRASE"] = PASSPHRASE  # each site opens its own keystore with it
    yield
    os.environ.pop("MEDSHARE_PASSPHRASE", None)


@pytest.fixture(scope="module")
def services(sites, access, hospital, doctor):
    """The hospital works at site A, the doctor at site B: each with its keystore in its own home."""
    owner, reader = AccessClient(access, hospital), AccessClient(access, doctor)
    ensure_published_key(owner, sites["site-a"].settings, PASSPHRASE)
    ensure_published_key(reader, sites["site-b"].settings, PASSPHRASE)
    return record_service(owner, sites["site-a"].settings), record_service(reader, sites["site-b"].settings)


def upload_and_grant(services, patient, doctor, chain, tmp_path, name: str, size: int):
    owner, _ = services
    record = tmp_path / f"{name}.bin"
    record.write_bytes(os.urandom(size))
    entry = owner.upload(record, patient.address, name)
    owner.grant(entry.record_bytes, [doctor.address], chain.pending_timestamp + 86400)
    return record, entry


def test_each_site_has_its_own_node_and_home(sites, services):
    owner, reader = services
    assert isinstance(owner.store, SiteStore) and isinstance(reader.store, SiteStore)
    assert owner.store.api == sites["site-a"].daemon.api != reader.store.api == sites["site-b"].daemon.api
    assert owner.keystore.path.parent != reader.keystore.path.parent  # no keystore on another party's disk


def test_a_record_uploaded_at_a_is_read_at_b(sites, services, patient, doctor, chain, tmp_path):
    record, entry = upload_and_grant(services, patient, doctor, chain, tmp_path, "scan-alive", 3 << 20)
    cid = CID.parse(entry.cid)
    b = KuboStore(sites["site-b"].daemon.api)
    assert not b.has(cid)  # B holds nothing of it before the read
    out = tmp_path / "fetched.bin"
    services[1].fetch(entry.record_bytes, out)
    assert out.read_bytes() == record.read_bytes()
    assert b.has(cid)  # the blocks came over the network into B's node


def test_status_shows_the_uploader_and_the_pinning_node(sites, services, patient, doctor, chain, tmp_path):
    _, entry = upload_and_grant(services, patient, doctor, chain, tmp_path, "scan-status", 1 << 20)
    cid = CID.parse(entry.cid)
    consortium = Consortium.load(sites["site-a"].settings.consortium_file)
    where = {place.name: place.pinned for place in pin_locations(cid, KuboStore(sites["site-a"].daemon.api), consortium)}
    assert where == {"this site": True, "pin-1": True}
    a = sites["site-a"].settings
    env = {"MEDSHARE_HOME": str(a.home), "MEDSHARE_IPFS_BACKEND": "kubo", "IPFS_API": a.ipfs_api}
    shown = CliRunner().invoke(medshare, ["ipfs", "status", str(cid)], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"pin-1 ({sites['pin-1'].daemon.api}): pinned" in shown.output
    assert "2 of 2 hold it; the consortium requires 2" in shown.output
    b = sites["site-b"].settings  # B's node does not hold it: B's view counts 1 of 2 nodes, fewer than required
    env = {"MEDSHARE_HOME": str(b.home), "MEDSHARE_IPFS_BACKEND": "kubo", "IPFS_API": b.ipfs_api}
    shown = CliRunner().invoke(medshare, ["ipfs", "status", str(cid)], env=env)
    assert shown.exit_code == 1 and "this site" in shown.output and ": not pinned" in shown.output


def test_an_upload_too_few_nodes_take_is_refused(sites):
    unreachable = f"/ip4/127.0.0.1/tcp/{free_port()}/http"
    consortium = Consortium(peers=(sites["site-a"].daemon.swarm_address,),
                            pinning_nodes=(PinningNode("gone", unreachable),), replication=2)
    store = SiteStore(KuboStore(sites["site-a"].daemon.api), consortium)
    with pytest.raises(ReplicationError, match=r"held by 1 of the 2 nodes the consortium requires; gone: "):
        store.add(io.BytesIO(os.urandom(1000)))


@pytest.mark.parametrize("config, message", [
    ({"replication": 0}, "at least 1"),
    ({"replication": 3, "pinning_nodes": [{"name": "p", "api": "/ip4/127.0.0.1/tcp/1/http"}]}, "needs more nodes"),
    ({"peers": ["/ip4/127.0.0.1/tcp/4001"]}, "must end in /p2p/PEER-ID"),
    ({"peer": []}, "unknown keys peer"),
    ({"pinning_nodes": [{"name": "p"}]}, "not a consortium config"),
    ([], "not a consortium config"),
])
def test_a_bad_consortium_config_is_one_clear_error(tmp_path, config, message):
    import json

    from offchain.errors import InvalidInput

    path = tmp_path / "consortium.json"
    path.write_text(json.dumps(config))
    with pytest.raises(InvalidInput, match=message):
        Consortium.load(path)


def test_with_a_stopped_after_replication_b_reads_from_the_pinning_node(sites, services, patient, doctor, chain,
                                                                      tmp_path):
    record, entry = upload_and_grant(services, patient, doctor, chain, tmp_path, "scan-a-down", 2 << 20)
    a = sites["site-a"].daemon
    a.stop()
    try:
        out = tmp_path / "fetched.bin"
        services[1].fetch(entry.record_bytes, out)
        assert out.read_bytes() == record.read_bytes()
    finally:
        a.start()
    assert isinstance(open_store(sites["site-b"].settings), SiteStore)
