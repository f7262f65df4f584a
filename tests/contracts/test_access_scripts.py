"""The consortium admin flows (offchain.deploy, offchain.members, record batches) on the session's anvil,
and each Ape script beside its ``medshare`` command, end to end on one chain of the test's own."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from offchain import deploy as deployment
from offchain import localchain
from offchain.chain import AccessClient
from offchain.cli import main
from offchain.deployments import find_deployment
from offchain.errors import InvalidInput
from offchain.members import MemberChange, NotAdmin, add_members, list_members, read_members_csv, remove_members
from offchain.roles import Role
from offchain.settings import Settings


# -- deploy ---------------------------------------------------------------------------------------


def _access(deployed: list) -> deployment.Deployed:
    return next(each for each in deployed if each.name == "MedicalAccess")


def test_deploy_records_and_refuses_to_replace_a_live_deployment(project, chain, admin, hospital, tmp_path):
    path = tmp_path / "deployments.json"
    deployed = deployment.deploy(admin, hospital.address, path=path)
    names = [each.name for each in deployed]
    assert names == [name for name, _ in deployment.CONTRACTS if name in project.contracts]
    for each in deployed:  # the round registry too, once it is a contract of its own
        assert find_deployment(chain.chain_id, path, name=each.name).address == each.address
    first = _access(deployed)
    registry = next(each for each in deployed if each.name == "RoundRegistry")
    assert project.RoundRegistry.at(registry.address).consortium() == first.address
    recorded = find_deployment(chain.chain_id, path)
    assert recorded.address == first.address and recorded.deployer == admin.address
    assert recorded.transaction == first.deployment.transaction and len(recorded.abi_sha256) == 64
    assert first.gas_used > 1_000_000
    before = path.read_text()
    with pytest.raises(deployment.AlreadyDeployed, match=f"already deployed on chain {chain.chain_id} at {first.address}.*--force"):
        deployment.deploy(admin, hospital.address, path=path)
    assert path.read_text() == before
    second = _access(deployment.deploy(admin, hospital.address, force=True, path=path))
    assert second.address != first.address and find_deployment(chain.chain_id, path).address == second.address


# -- members --------------------------------------------------------------------------------------


def test_members_one_or_many_in_one_transaction(access, admin, doctor, stranger, other_patient, accounts):
    client = AccessClient(access, admin)
    newcomer = accounts[10].address if len(accounts) > 10 else stranger.address
    outcomes = add_members(client, [MemberChange(Role.RESEARCHER, stranger.address, "Lab B"),
                                    MemberChange(Role.DOCTOR, doctor.address),  # already a doctor
                                    MemberChange(Role.COORDINATOR, newcomer)])
    assert [outcome.changed for outcome in outcomes] == [True, False, True]
    assert len(client.sent) == 1  # one multicall for both changes
    assert client.roles_of(stranger.address) & Role.RESEARCHER and client.roles_of(newcomer) & Role.COORDINATOR
    assert stranger.address in list_members(client, [Role.RESEARCHER])[Role.RESEARCHER]
    (outcome,) = remove_members(client, [MemberChange(Role.PATIENT, other_patient.address)])
    assert outcome.changed and not client.roles_of(other_patient.address) & Role.PATIENT
    assert len(client.sent) == 2
    with pytest.raises(NotAdmin, match="is not a consortium admin"):
        add_members(AccessClient(access, doctor), [MemberChange(Role.DOCTOR, stranger.address)])
    with pytest.raises(InvalidInput, match="appear twice"):
        add_members(client, [MemberChange(Role.DOCTOR, stranger.address)] * 2)


BAD_MEMBER_FILES = [
    ("doctor,0x3C44CdDdB6a900fa2b585dd299e03d12FA4293Bc\n", r"row 2, column 'address': .*wrong EIP-55 checksum"),
    ("nurse,0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc\n", r"row 2, column 'role': unknown role 'nurse'"),
    ("doctor,0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc\n", r"row 2, column 'address': .* repeats row 1"),
    ("doctor,0x1234\n", r"row 2, column 'address': .*not an Ethereum address"),
    ("doctor\n", r"row 2: 1 cells"),
]


@pytest.mark.parametrize("second_row,message", BAD_MEMBER_FILES)
def test_a_bad_members_row_refuses_the_whole_file(access, admin, second_row, message, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("doctor,0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC,Dr. Who\n" + second_row)
    with pytest.raises(InvalidInput, match=message):
        read_members_csv(path)
    # The command refuses before connecting: nothing is sent.
    result = CliRunner().invoke(main, ["members", "add", "--csv", str(path), "--contract", access.address])
    assert result.exit_code == 2 and re.search(message, result.output) and "Traceback" not in result.output


# -- each script beside its command, on one chain -------------------------------------------------

HOSPITAL, DOCTOR, PATIENT = ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                             "0x90F79bf6EB2c4f870365E785982E1f101E93b906")
RESEARCHER, OTHER_HOSPITAL = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"
OTHER_DOCTOR, OTHER_PATIENT = "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def session_chain(tmp_path):
    """``medshare chain up`` in a scratch MEDSHARE_HOME; stopped at the end."""
    settings = Settings(home=tmp_path / "home")
    local, started = localchain.up(settings, port=_free_port())
    assert started
    yield settings
    localchain.down(settings)


def _normalized(output: str) -> str:
    """Output with what differs between two runs (addresses, hashes, numbers, dates) blanked out."""
    output = re.sub(r"0x[0-9a-fA-F]{40,64}", "0x…", output)
    return re.sub(r"\d[\d,:.-]*", "N", output)


def test_each_script_does_what_its_command_does(project, session_chain, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env.update(MEDSHARE_HOME=str(session_chain.home), MEDSHARE_PASSPHRASE="a passphrase")
    bin_dir = Path(sys.executable).parent

    def run(front: str, *args: str, ok: bool = True) -> str:
        command = [str(bin_dir / "ape"), "run", *args] if front == "script" else [str(bin_dir / "medshare"), *args]
        done = subprocess.run(command, cwd=project.path, env=env, capture_output=True, text=True, timeout=300)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout + (done.stderr if not ok else "")

    def pair(script: list[str], command: list[str], **kwargs) -> tuple[str, str]:
        by_script, by_command = run("script", *script, **kwargs), run("cli", *command, **kwargs)
        assert _normalized(by_script) == _normalized(by_command)
        return by_script, by_command

    # deploy, then deploy again: refused by both, then forced by both
    first = run("script", "deploy")
    assert "MedicalAccess deployed at" in first and "gas" in first
    refused = pair(["deploy"], ["deploy"], ok=False)
    assert all("already deployed" in out and "--force" in out for out in refused)
    by_script, by_command = pair(["deploy", "--force"], ["deploy", "--force"])
    address = find_deployment(31337, Path(session_chain.home) / "deployments.json").address
    assert address in by_command

    # members: one by each, then a file by each
    pair(["members", "add", "data-owner", HOSPITAL, "--label", "Hospital"],
         ["members", "add", "data-owner", OTHER_HOSPITAL, "--label", "Hospital"])
    files = []
    for patient, doctor in [(PATIENT, DOCTOR), (OTHER_PATIENT, OTHER_DOCTOR)]:
        files.append(tmp_path / f"members{len(files)}.csv")
        files[-1].write_text(f"role,address,label\npatient,{patient},Patient\ndoctor,{doctor},Dr\n")
    by_script, by_command = pair(["members", "add", "--csv", str(files[0])], ["members", "add", "--csv", str(files[1])])
    assert f"2. {DOCTOR} (Dr) holds the doctor role" in by_script and by_script.count("tx 0x") == 1
    again = run("cli", "members", "add", "--csv", str(files[0]))
    assert again.count("unchanged") == 2 and "tx 0x" not in again
    run("script", "members", "add", "researcher", RESEARCHER)
    listed = pair(["members", "list", "doctor"], ["members", "list", "doctor"])[0]
    assert f"doctor: {DOCTOR}, {OTHER_DOCTOR}" in listed

    # records: keys, an upload, then grant and revoke by each front end
    for index in (1, 2, 3):
        run("cli", "keys", "publish", "--account", f"TEST::{index}")
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(os.urandom(100_000))
    uploaded = run("cli", "record", "upload", str(scan), "--patient", PATIENT, "--name", "scan", "--account", "TEST::1")
    record_id = re.search(r"record (0x[0-9a-f]{64})", uploaded)[1]
    grants = pair(["grant", record_id, DOCTOR, "--days", "7", "--account", "TEST::1"],
                  ["record", "grant", record_id, DOCTOR, "--days", "7", "--account", "TEST::1"])
    assert all("UTC (Unix" in out and "tx 0x" in out for out in grants)
    copy = tmp_path / "copy.dcm"
    run("cli", "record", "fetch", record_id, "-o", str(copy), "--account", "TEST::2")  # the script's grant carried the key
    assert copy.read_bytes() == scan.read_bytes()
    consent = pair(["grant", record_id, RESEARCHER, "--days", "1", "--account", "TEST::1"],
                   ["record", "grant", record_id, RESEARCHER, "--days", "1", "--account", "TEST::1"], ok=False)
    assert all("needs the patient's consent" in out for out in consent)
    batch = tmp_path / "grants.csv"
    batch.write_text(f"record,grantee,days\n{record_id},{DOCTOR},2\n")
    pair(["grant", "--csv", str(batch), "--account", "TEST::1"],
         ["record", "grant", "--csv", str(batch), "--account", "TEST::1"])
    revoked = run("script", "revoke", "--csv", str(batch), "--account", "TEST::3")
    assert f"row 2: revoked {DOCTOR}" in revoked
    again = pair(["revoke", record_id, DOCTOR, "--account", "TEST::1"],
                 ["record", "revoke", record_id, DOCTOR, "--account", "TEST::1"], ok=False)
    assert all("holds no grant" in out for out in again)
