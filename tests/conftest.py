"""Shared fixtures: named consortium accounts and a deployed MedicalAccess with every role handed out.

Ape's test isolation rolls the chain back after each test, so session-scoped deployments are reused
safely; a test's own transactions never leak into the next one.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_canonical_address
from hypothesis import settings

from offchain.chain.signatures import DOMAIN_NAME, DOMAIN_TYPE, DOMAIN_VERSION, GRANT_TYPE

ONE_DAY = 24 * 3600

# Property tests draw new examples on every CI run; a per-example deadline would turn a loaded
# machine into a failure that says nothing about the code.
settings.register_profile("medshare", deadline=None)
settings.load_profile("medshare")

# The suites whose every test starts processes (the CLI, `ape run`, node processes, a portal server,
# Chromium) or a long campaign: left out of the quick loop (`./run test -m "not slow"`). A path ending
# in "/" is a folder. Tests elsewhere that do the same carry the marks themselves.
MARKS_BY_PATH = {
    "tests/web/": ("browser", "slow"),
    "tests/sites/": ("sites", "e2e", "slow"),
    "tests/toolchain/": ("toolchain",),
    "tests/test_demo.py": ("e2e", "slow"),
    "tests/test_readme.py": ("e2e", "slow"),
    "tests/rounds/test_rounds_readme.py": ("e2e", "slow"),
    "tests/rounds/test_rounds_cli.py": ("e2e", "slow"),
    "tests/rounds/test_rounds_resume.py": ("e2e", "slow"),
    "tests/rounds/test_rounds_privacy_cli.py": ("e2e", "slow"),
    "tests/rounds/test_rounds_secure_cli.py": ("e2e", "slow"),
    "tests/contracts/test_access_scripts.py": ("e2e", "slow"),
    "tests/offchain/test_rehearse_amoy.py": ("e2e", "slow"),
    "tests/offchain/test_crypto_memory.py": ("slow",),
    "tests/evaluation/test_evaluation_cli.py": ("e2e", "slow"),
    "tests/byo/test_byo_study.py": ("e2e", "slow"),
    "tests/compression/test_compression_chain.py": ("slow",),
    "tests/compression/test_byzantine_nodes.py": ("e2e", "slow"),
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        for prefix, marks in MARKS_BY_PATH.items():
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                for mark in marks:
                    item.add_marker(mark)


@pytest.fixture(scope="session", autouse=True)
def _local_chain_has_no_explorer(networks):
    """Ape looks for a block explorer when a transaction fails (to name the contract), and asks each
    explorer plugin whether it serves the chain id: ape-etherscan answers by fetching Etherscan's chain
    list from api.etherscan.io. Tests contact 127.0.0.1 only, and a local chain has no explorer."""
    network = networks.provider.network
    if network.name == "local":
        network.__dict__["explorer"] = None  # what the cached property would hold


def make_cid(n: int, kind: str = "v1-raw") -> bytes:
    """A distinct binary CID per ``n`` (the digest is ``n`` big-endian): ``v0``, ``v1-raw`` or ``v1-dag-pb``."""
    digest = n.to_bytes(32, "big")
    prefix = {"v0": "1220", "v1-raw": "01551220", "v1-dag-pb": "01701220"}[kind]
    return bytes.fromhex(prefix) + digest


def record_id(owner, cid: bytes) -> bytes:
    """The id ``owner`` registers ``cid`` as: keccak256(owner address || the CID's sha2-256 digest)."""
    return keccak(to_canonical_address(getattr(owner, "address", owner)) + cid[-32:])


def _named_account(index: int, role: str):
    @pytest.fixture(scope="session")
    def account(accounts):
        return accounts[index]

    account.__doc__ = f"Test account {index}: {role}."
    return account


admin = _named_account(0, "consortium admin, deploys the contract")
hospital = _named_account(1, "data owner")
doctor = _named_account(2, "doctor")
patient = _named_account(3, "patient of the `record` fixture")
researcher = _named_account(4, "researcher")
medic = _named_account(5, "emergency (break-glass) role")
guardian = _named_account(6, "guardian (pause)")
other_hospital = _named_account(7, "a second data owner")
other_patient = _named_account(8, "a second patient")
stranger = _named_account(9, "no role")


@pytest.fixture(scope="session")
def access(project, admin, hospital, doctor, patient, researcher, medic, guardian, other_hospital, other_patient):
    """MedicalAccess deployed by ``admin``, with each named account holding its role."""
    contract = admin.deploy(project.MedicalAccess, admin)
    for role, member in [
        (contract.GUARDIAN_ROLE(), guardian),
        (contract.DATA_OWNER_ROLE(), hospital),
        (contract.DATA_OWNER_ROLE(), other_hospital),
        (contract.DOCTOR_ROLE(), doctor),
        (contract.RESEARCHER_ROLE(), researcher),
        (contract.PATIENT_ROLE(), patient),
        (contract.PATIENT_ROLE(), other_patient),
        (contract.EMERGENCY_ROLE(), medic),
    ]:
        contract.grantRole(role, member, sender=admin)
    return contract


@pytest.fixture
def record(access, hospital, patient):
    """A record registered by ``hospital`` for ``patient`` (its id is the CID's digest)."""
    return access.registerRecord(make_cid(1), patient, sender=hospital).return_value


@pytest.fixture
def in_a_day(chain):
    """A grant expiry one day after the next block."""
    return chain.pending_timestamp + ONE_DAY


@dataclass(frozen=True)
class PatientSigner:
    """Builds a patient's EIP-712 ``Grant`` and ``Consent`` signatures for a deployed MedicalAccess.

    A signature names the block it is issued in (``issuedBlock``: the chain's latest block when the
    patient signs) and any unused nonce the patient picks.
    """

    contract: Any
    chain_id: int

    TYPES = {
        "Grant": GRANT_TYPE,
        "Consent": [
            {"name": "record", "type": "bytes32"},
            {"name": "researcher", "type": "address"},
            {"name": "expiry", "type": "uint64"},
            {"name": "nonce", "type": "uint256"},
            {"name": "issuedBlock", "type": "uint64"},
            {"name": "deadline", "type": "uint256"},
        ],
    }

    def sign(self, signer, primary_type: str, message: dict, verifying_contract: str | None = None) -> bytes:
        typed = {
            "types": {
                "EIP712Domain": DOMAIN_TYPE,
                primary_type: self.TYPES[primary_type],
            },
            "primaryType": primary_type,
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": self.chain_id,
                "verifyingContract": verifying_contract or self.contract.address,
            },
            "message": message,
        }
        return signer.sign_message(encode_typed_data(full_message=typed)).encode_rsv()


@pytest.fixture(scope="session")
def patient_signer(access, chain):
    return PatientSigner(access, chain.chain_id)


CLI_PASSPHRASE = "a passphrase for the CLI tests"


@pytest.fixture
def medshare(access, tmp_path, monkeypatch):
    """``medshare(account_index, *args, ok=True)``: run the CLI in-process as that test account against ``access``."""
    from click.testing import CliRunner

    from offchain.cli import main

    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", CLI_PASSPHRASE)
    monkeypatch.delenv("MEDSHARE_DEPLOYMENTS", raising=False)

    def run(account_index: int, *args: str, ok: bool = True):
        command, sub, *rest = args
        full = [command, sub, "--account", f"TEST::{account_index}", "--contract", access.address, *rest]
        result = CliRunner().invoke(main, full)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    return run


# -- federated-learning rounds -------------------------------------------------------------------


def make_artifact(n: int) -> tuple[bytes, bytes]:
    """A distinct (binary CID, SHA-256) pair per ``n``, as the round registry names an artifact."""
    return make_cid(n), (n + 1 << 128).to_bytes(32, "big")


def _funded_new_account(accounts, chain):
    """A fresh test account with ether: roles handed out here never touch the named accounts'."""
    account = accounts.generate_test_account()
    chain.set_balance(account, 10**21)
    return account


@pytest.fixture(scope="session")
def coordinator(accounts, chain):
    """An account of its own that will hold the coordinator role (in the ``rounds`` fixture)."""
    return _funded_new_account(accounts, chain)


@pytest.fixture(scope="session")
def hospitals(accounts, chain):
    """Four accounts of their own that will hold the participant role (in the ``rounds`` fixture)."""
    return [_funded_new_account(accounts, chain) for _ in range(4)]


@pytest.fixture(scope="session")
def rounds(project, access, admin, coordinator, hospitals):
    """A RoundRegistry bound to ``access``; ``coordinator`` holds the coordinator role and every one
    of ``hospitals`` the participant role."""
    registry = admin.deploy(project.RoundRegistry, access)
    access.grantRole(access.COORDINATOR_ROLE(), coordinator, sender=admin)
    for member in hospitals:
        access.grantRole(access.PARTICIPANT_ROLE(), member, sender=admin)
    return registry


def role_members(access, role):
    """The members of ``role`` as the library lists them (the contract does not enumerate them):
    replayed from its RoleGranted and RoleRevoked events by the event store."""
    from offchain.chain.access import AccessClient
    from offchain.members import list_members

    return list_members(AccessClient(access, None), [role])[role]
