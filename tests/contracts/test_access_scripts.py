"""The consortium admin scripts: their functions on the session's anvil, and their command lines
end to end against an anvil of the test's own."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from cid import CIDv0, CIDv1
from web3 import HTTPProvider, Web3

from conftest import make_cid, record_id


@pytest.fixture
def admin_scripts(project, monkeypatch, tmp_path):
    """The scripts' modules, recording deployments in a scratch file."""
    monkeypatch.syspath_prepend(str(project.path))
    monkeypatch.setenv("MEDSHARE_DEPLOYMENTS", str(tmp_path / "deployments.json"))
    import scripts._admin as admin_helpers
    import scripts.deploy as deploy
    import scripts.grant as grant
    import scripts.participants as participants
    import scripts.revoke as revoke

    return admin_helpers, deploy, grant, participants, revoke


def test_deploy_records_the_contract_for_the_other_scripts(admin_scripts, project, chain, admin, tmp_path):
    admin_helpers, deploy, *_ = admin_scripts
    with pytest.raises(click.ClickException, match=f"no MedicalAccess recorded for chain {chain.chain_id}"):
        admin_helpers.load_access(None)
    access = deploy.deploy(admin, admin.address)
    recorded = json.loads((tmp_path / "deployments.json").read_text())[str(chain.chain_id)]["MedicalAccess"]
    assert recorded["address"] == access.address and recorded["deployer"] == admin.address
    assert recorded["transaction"] == access.txn_hash and len(recorded["abi_sha256"]) == 64
    assert admin_helpers.load_access(None).address == access.address
    assert access.hasRole(access.DEFAULT_ADMIN_ROLE(), admin)
    # The round registry is deployed after it, bound to it, and recorded beside it.
    rounds = json.loads((tmp_path / "deployments.json").read_text())[str(chain.chain_id)]["RoundRegistry"]
    assert rounds["deployer"] == admin.address and rounds["block"] > recorded["block"]
    assert project.RoundRegistry.at(rounds["address"]).consortium() == access.address


def test_contract_address_must_hold_code(admin_scripts, stranger):
    admin_helpers, *_ = admin_scripts
    with pytest.raises(click.ClickException, match="no contract code"):
        admin_helpers.load_access(stranger.address)
    with pytest.raises(click.ClickException, match="not an Ethereum address"):
        admin_helpers.load_access("0x1234")


def test_local_signer_defaults_to_the_first_test_account(admin_scripts, accounts, doctor):
    admin_helpers, *_ = admin_scripts
    assert admin_helpers.signer(None) == accounts[0]
    assert admin_helpers.signer(doctor) == doctor


def test_records_are_named_by_id_or_by_any_cid_of_the_owner(admin_scripts, access, hospital, record):
    admin_helpers, *_ = admin_scripts
    assert admin_helpers.parse_record(access, "0x" + record.hex(), hospital.address) == record
    multihash = make_cid(1, "v0")
    for cid in (CIDv0(multihash), CIDv0(multihash).to_v1(), CIDv1("raw", multihash)):
        assert admin_helpers.parse_record(access, cid.encode().decode(), hospital.address) == record
    with pytest.raises(click.ClickException, match="neither a 0x-prefixed record id nor a CID"):
        admin_helpers.parse_record(access, "not-a-cid", hospital.address)
    # A well-formed CID the contract does not take (sha2-512): the contract's own error, decoded.
    sha512 = CIDv1("raw", bytes([0x13, 64]) + bytes(64)).encode().decode()
    with pytest.raises(click.ClickException, match=r"refused by the contract: InvalidCid\(cid=0x0155134"):
        admin_helpers.parse_record(access, sha512, hospital.address)


def test_grant_script_grants_one_or_a_batch(admin_scripts, access, admin, hospital, doctor, researcher, record, in_a_day):
    *_, grant, _, _ = admin_scripts
    receipt = grant.grant(access, hospital, record, [doctor.address], in_a_day)
    assert receipt.events == [access.AccessGranted(record, doctor, hospital, in_a_day)]
    receipt = grant.grant(access, hospital, record, [doctor.address, researcher.address], in_a_day + 1)
    assert len(receipt.events) == 2
    assert access.grantOf(record, researcher)[0] == in_a_day + 1


def test_grant_script_refuses_bad_input_and_changes_nothing(
    admin_scripts, access, chain, hospital, doctor, stranger, record, in_a_day
):
    *_, grant, _, _ = admin_scripts
    unknown = (404).to_bytes(32, "big")
    cases = [
        (stranger, unknown, [doctor.address], in_a_day, "is not registered"),
        (stranger, record, [doctor.address], in_a_day, "is neither the owner"),
        (hospital, record, [stranger.address], in_a_day, "holds neither the doctor nor the researcher role"),
        (hospital, record, [doctor.address], chain.pending_timestamp - 1, "is not in the future"),
    ]
    for sender, rec, grantees, expiry, message in cases:
        with pytest.raises(click.ClickException, match=message):
            grant.grant(access, sender, rec, grantees, expiry)
    assert access.grantOf(record, doctor) == (0, 0, 0)


def test_revoke_script(admin_scripts, access, hospital, patient, doctor, record, in_a_day):
    *_, grant, _, revoke = admin_scripts
    with pytest.raises(click.ClickException, match="holds no grant"):
        revoke.revoke(access, hospital, record, doctor.address)
    grant.grant(access, hospital, record, [doctor.address], in_a_day)
    receipt = revoke.revoke(access, patient, record, doctor.address)
    assert receipt.events == [access.AccessRevoked(record, doctor, patient)]
    assert not access.checkAccess(doctor, record)


def test_participants_script(admin_scripts, access, admin, doctor, stranger):
    *_, participants, _ = admin_scripts
    receipt = participants.add_member(access, admin, "researcher", stranger.address)
    assert receipt.events == [access.RoleGranted(access.RESEARCHER_ROLE(), stranger, admin)]
    assert participants.list_members(access, ["researcher"]) == {"researcher": [access.getRoleMember(access.RESEARCHER_ROLE(), 0), stranger.address]}
    with pytest.raises(click.ClickException, match="already holds the researcher role"):
        participants.add_member(access, admin, "researcher", stranger.address)
    with pytest.raises(click.ClickException, match="is not a consortium admin"):
        participants.remove_member(access, doctor, "researcher", stranger.address)
    participants.remove_member(access, admin, "researcher", stranger.address)
    with pytest.raises(click.ClickException, match="does not hold the researcher role"):
        participants.remove_member(access, admin, "researcher", stranger.address)
    assert not access.hasRole(access.RESEARCHER_ROLE(), stranger)


# -- the command lines, end to end ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_anvil():
    """An anvil of this test's own (ape's per-command anvil would forget between commands)."""
    port = _free_port()
    process = subprocess.Popen(
        [shutil.which("anvil"), "--port", str(port), "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    web3 = Web3(HTTPProvider(url))
    for _ in range(100):
        if web3.is_connected():
            break
        time.sleep(0.1)
    yield url, web3
    process.terminate()
    process.wait(timeout=10)


def test_command_lines_end_to_end(project, own_anvil, access, tmp_path, accounts):
    url, web3 = own_anvil
    _, hospital, doctor, patient = (a.address for a in accounts[:4])  # TEST::0 .. TEST::3
    env = {**os.environ, "MEDSHARE_DEPLOYMENTS": str(tmp_path / "deployments.json")}
    network = ["--network", "ethereum:local:foundry", "--provider-settings", json.dumps({"host": url})]

    def ape_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(Path(sys.executable).parent / "ape"), "run", *args, *network],
            cwd=project.path, env=env, capture_output=True, text=True, timeout=120,
        )

    deployed = ape_run("deploy")
    assert deployed.returncode == 0, deployed.stderr
    recorded = json.loads((tmp_path / "deployments.json").read_text())["31337"]
    address = recorded["MedicalAccess"]["address"]
    assert address in deployed.stdout and recorded["RoundRegistry"]["address"] in deployed.stdout
    for role, member in [("data-owner", hospital), ("patient", patient), ("doctor", doctor)]:
        added = ape_run("participants", "add", role, member)
        assert added.returncode == 0, added.stderr

    def call(method, *args, sender=None):
        data = getattr(access, method).encode_input(*args)
        tx = {"to": address, "data": data, **({"from": sender} if sender else {})}
        if sender is None:
            return web3.eth.call(tx)
        assert web3.eth.wait_for_transaction_receipt(web3.eth.send_transaction(tx)).status == 1

    cid = make_cid(5, "v0")
    call("registerRecord", cid, patient, sender=hospital)
    rid = record_id(hospital, cid)
    cid_text = CIDv0(cid).encode().decode()
    granted = ape_run("grant", cid_text, doctor, "--days", "1", "--account", "TEST::1")
    assert granted.returncode == 0, granted.stderr
    assert call("checkAccess", doctor, rid)[-1] == 1

    listed = ape_run("participants", "list", "doctor")
    assert listed.returncode == 0 and f"doctor: {doctor}" in listed.stdout

    revoked = ape_run("revoke", "0x" + rid.hex(), doctor, "--account", "TEST::3")
    assert revoked.returncode == 0, revoked.stderr
    assert call("checkAccess", doctor, rid)[-1] == 0

    unknown = ape_run("grant", "0x" + "ab" * 32, doctor, "--days", "1", "--account", "TEST::1")
    assert unknown.returncode == 1 and "is not registered" in unknown.stderr
    bad_role = ape_run("participants", "add", "nurse", doctor)
    assert bad_role.returncode == 2 and "'nurse' is not one of" in bad_role.stderr
    not_admin = ape_run("participants", "remove", "doctor", doctor, "--account", "TEST::2")
    assert not_admin.returncode == 1 and "is not a consortium admin" in not_admin.stderr
    assert call("hasRole", access.DOCTOR_ROLE(), doctor)[-1] == 1
