"""The consortium admin flows (offchain.chain.deploy, offchain.members, record batches) on the session's anvil,
each Ape script shown to be its ``medshare`` command, and the flows end to end on one chain of the test's own."""

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from offchain.chain import deploy as deployment
from offchain.chain import localchain
from offchain.chain.access import AccessClient
from offchain.cli import main
from offchain.chain.deployments import find_deployment
from offchain.errors import InvalidInput
from offchain.members import MemberChange, NotAdmin, add_members, list_members, read_members_csv, remove_members
from offchain.chain.roles import Role
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


# -- each script is its command; the flow end to end, one script run by Ape --------------------

# Each Ape script is thin over the library: it hands Ape the very click command `medshare` runs, so the
# two cannot differ (`ape run NAME ARGS` is `medshare COMMAND ARGS`). The demo is the one script with
# no command of its own (tests/test_demo.py runs it).
SCRIPT_COMMANDS = {
    "deploy": ("offchain.cli.deploy", "deploy"),
    "grant": ("offchain.cli.record", "grant"),
    "members": ("offchain.cli.members", "members"),
    "revoke": ("offchain.cli.record", "revoke"),
    "rounds": ("offchain.cli.rounds", "rounds"),
}


def _script(project, name: str):
    spec = importlib.util.spec_from_file_location(f"medshare_script_{name}", Path(project.path) / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_script_but_the_demo_has_its_command(project):
    scripts = {path.stem for path in (Path(project.path) / "scripts").glob("*.py")}
    assert scripts - {"demo"} == set(SCRIPT_COMMANDS)


@pytest.mark.parametrize("name", sorted(SCRIPT_COMMANDS))
def test_each_script_hands_ape_the_command_medshare_runs(project, name):
    module, command = SCRIPT_COMMANDS[name]
    expected = getattr(importlib.import_module(module), command)
    assert _script(project, name).cli is expected
    # ... and it is the command `medshare` itself dispatches to.
    path = {"deploy": ["deploy"], "grant": ["record", "grant"], "members": ["members"],
            "revoke": ["record", "revoke"], "rounds": ["rounds"]}[name]
    found = main
    for part in path:
        found = found.commands[part]
    assert found is expected


HOSPITAL, DOCTOR, PATIENT = ("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
                             "0x90F79bf6EB2c4f870365E785982E1f101E93b906")
RESEARCHER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
OTHER_DOCTOR, OTHER_PATIENT = "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"


@pytest.fixture
def session_chain(tmp_path):
    """``medshare chain up`` in a scratch MEDSHARE_HOME; stopped at the end."""
    settings = Settings(home=tmp_path / "home")
    local, started = localchain.up(settings, port=localchain.free_port())
    assert started
    yield settings
    localchain.down(settings)


def test_the_admin_and_record_flows_end_to_end_by_script_and_command(project, session_chain, tmp_path):
    """Every step a process of its own, as a consortium admin runs them; the first deploy and the first
    grant by `ape run` (the scripts' real path through Ape), the rest by `medshare`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env.update(MEDSHARE_HOME=str(session_chain.home), MEDSHARE_PASSPHRASE="a passphrase")
    bin_dir = Path(sys.executable).parent

    def run(front: str, *args: str, ok: bool = True) -> str:
        command = [str(bin_dir / "ape"), "run", *args] if front == "script" else [str(bin_dir / "medshare"), *args]
        done = subprocess.run(command, cwd=project.path, env=env, capture_output=True, text=True, timeout=300)
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout + (done.stderr if not ok else "")

    # deploy, then deploy again: refused, then forced
    first = run("script", "deploy")
    assert "MedicalAccess deployed at" in first and "gas" in first
    refused = run("cli", "deploy", ok=False)
    assert "already deployed" in refused and "--force" in refused
    forced = run("cli", "deploy", "--force")
    address = find_deployment(31337, Path(session_chain.home) / "deployments.json").address
    assert address in forced

    # members: one, then a file of them in one transaction, then the same file again
    run("cli", "members", "add", "data-owner", HOSPITAL, "--label", "Hospital")
    members = tmp_path / "members.csv"
    members.write_text(f"role,address,label\npatient,{PATIENT},Patient\ndoctor,{DOCTOR},Dr\n"
                       f"patient,{OTHER_PATIENT},Patient\ndoctor,{OTHER_DOCTOR},Dr\n")
    added = run("cli", "members", "add", "--csv", str(members))
    assert f"2. {DOCTOR} (Dr) holds the doctor role" in added and added.count("tx 0x") == 1
    again = run("cli", "members", "add", "--csv", str(members))
    assert again.count("unchanged") == 4 and "tx 0x" not in again
    run("cli", "members", "add", "researcher", RESEARCHER)
    listed = run("cli", "members", "list", "doctor")
    assert f"doctor: {DOCTOR}, {OTHER_DOCTOR}" in listed

    # records: keys, an upload, then grant and revoke
    for index in (1, 2, 3):
        run("cli", "keys", "publish", "--account", f"TEST::{index}")
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(os.urandom(100_000))
    uploaded = run("cli", "record", "upload", str(scan), "--patient", PATIENT, "--name", "scan", "--account", "TEST::1")
    record_id = re.search(r"record (0x[0-9a-f]{64})", uploaded)[1]
    granted = run("script", "grant", record_id, DOCTOR, "--days", "7", "--account", "TEST::1")
    assert "UTC (Unix" in granted and "tx 0x" in granted
    copy = tmp_path / "copy.dcm"
    run("cli", "record", "fetch", record_id, "-o", str(copy), "--account", "TEST::2")  # the script's grant carried the key
    assert copy.read_bytes() == scan.read_bytes()
    consent = run("cli", "record", "grant", record_id, RESEARCHER, "--days", "1", "--account", "TEST::1", ok=False)
    assert "needs the patient's consent" in consent
    batch = tmp_path / "grants.csv"
    batch.write_text(f"record,grantee,days\n{record_id},{DOCTOR},2\n")
    run("cli", "record", "grant", "--csv", str(batch), "--account", "TEST::1")
    revoked = run("cli", "record", "revoke", "--csv", str(batch), "--account", "TEST::3")
    assert f"row 2: revoked {DOCTOR}" in revoked
    again = run("cli", "record", "revoke", record_id, DOCTOR, "--account", "TEST::1", ok=False)
    assert "holds no grant" in again
