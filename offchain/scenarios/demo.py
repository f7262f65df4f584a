"""The consortium scenario that ``./run demo`` plays, end to end, on a local anvil and the embedded store.

Three hospitals, a doctor, a researcher, an emergency physician and three
patients (anvil's test accounts, holding the roles they hold in README's
command session and in the tests) run every flow of the library once:
deploy, membership in one transaction, keys, encrypted records exported from
the bundled breast-cancer data (one CSV file per patient row group of each
hospital's share), a grant, a patient-signed (EIP-712) grant relayed by a
hospital, a researcher refused without consent and let in with it, a
stranger refused, break-glass opened and audited, a revocation with key
rotation, and a federated study whose rounds the hospitals' node processes
commit on chain and the researcher verifies (:func:`~offchain.rounds.runner.run_study`,
as ``medshare fl run``).

Every read is an attempt by the reader's own :class:`~offchain.records.RecordService`,
recorded as an :class:`AccessCheck`: what the scenario expects and what the
chain and the keys allowed. :func:`run_demo` returns a :class:`DemoResult`;
printing is the caller's.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from offchain.chain.access import AccessClient
from offchain.chain.contract import Sent
from offchain.consortium import deploy_contracts, ensure_published_key, open_keystore
from offchain.crypto import KeySuite
from offchain.errors import MedShareError
from offchain.inputs import show_time
from offchain.ipfs import open_store
from offchain.members import MemberChange, add_members
from offchain.records import AccessRefused, RecordIndex, RecordService
from offchain.chain.roles import Role
from offchain.settings import Settings
from offchain.chain.signatures import sign_grant

NETWORK = "ethereum:local:foundry"
DEFAULT_ROUNDS = 2
ONE_DAY = 24 * 3600
GRANT_DAYS, CONSENT_DAYS, BREAK_GLASS_SECONDS = 7, 30, 3600
LABEL_COLUMN = "diagnosis"

# Who plays whom: anvil's test accounts, as README's session (1 a hospital, 2 the doctor, 3 a patient)
# and tests/conftest.py (4 researcher, 5 emergency, 7 a second hospital, 8 a second patient, 9 no role) name them.
ADMIN = 0
HOSPITALS = {"Hospital A": 1, "Hospital B": 7, "Hospital C": 10}
PATIENTS = {"patient A": 3, "patient B": 8, "patient C": 11}
DOCTOR, RESEARCHER, EMERGENCY, STRANGER, COORDINATOR = "doctor", "researcher", "emergency physician", "stranger", "coordinator"
OTHERS = {DOCTOR: 2, RESEARCHER: 4, EMERGENCY: 5, STRANGER: 9, COORDINATOR: 12}
ROLES: dict[str, tuple[Role, ...]] = {
    **{name: (Role.DATA_OWNER, Role.PARTICIPANT) for name in HOSPITALS},
    **{name: (Role.PATIENT,) for name in PATIENTS},
    DOCTOR: (Role.DOCTOR,), RESEARCHER: (Role.RESEARCHER,), EMERGENCY: (Role.EMERGENCY,), COORDINATOR: (Role.COORDINATOR,),
}
"""Every member's roles (the stranger holds none). The hospitals also train in the study; the researcher audits it."""


class DemoError(MedShareError):
    """The scenario did not go as the library promises (a read returned other bytes, a round failed)."""


class Report(Protocol):
    """Where the scenario tells its progress: one line a step, a bar for long work."""

    def step(self, title: str, text: str) -> None: ...

    def progress(self, label: str, length: int) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...


@dataclass(frozen=True)
class AccessCheck:
    """One read attempt: ``who`` read ``record`` (or was refused); ``expected`` is what the scenario says."""

    who: str
    record: str
    expected: bool
    got: bool
    step: str

    @property
    def passed(self) -> bool:
        return self.expected == self.got


@dataclass(frozen=True)
class DemoRecord:
    """A record the demo uploaded: whose rows, where they are, and the plaintext's digest."""

    name: str
    hospital: str
    patient: str
    record_id: str
    cid: str
    version: int
    rows: int
    sha256: str


@dataclass
class DemoResult:
    network: str
    chain_id: int
    contract: str
    registry: str = ""
    records: list[DemoRecord] = field(default_factory=list)
    access_checks: list[AccessCheck] = field(default_factory=list)
    study: int = 0
    rounds: list = field(default_factory=list)  # the study report's committed rounds (runner.RoundResult)
    plot: str = ""
    gas: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each phase: consortium (deploy, members, keys), records, sharing, study."""
    folder: str = ""

    def to_json(self) -> dict:
        return {
            "network": self.network, "chain_id": self.chain_id, "contract": self.contract, "registry": self.registry,
            "records": [asdict(record) for record in self.records],
            "access_checks": [{"who": c.who, "record": c.record, "expected": c.expected, "got": c.got}
                              for c in self.access_checks],
            "study": self.study, "rounds": [asdict(entry) for entry in self.rounds], "plot": self.plot, "gas": self.gas, "seconds": self.seconds,
        }


def run_demo(folder: Path, report: Report, *, rounds: int = DEFAULT_ROUNDS) -> DemoResult:
    """Play the whole scenario on a fresh local anvil with its state in ``folder`` (emptied first)."""
    from ape import networks
    from ape.logging import LogLevel, logger

    _fresh_folder(folder)
    passphrase = secrets.token_urlsafe(24)  # the keystores live as long as this run's chain
    environment = {"MEDSHARE_HOME": str(folder), "MEDSHARE_IPFS_BACKEND": "embedded",
                   "MEDSHARE_PASSPHRASE": passphrase, "MEDSHARE_DEPLOYMENTS": None}
    # Ape's INFO lines (anvil started and stopped, each transaction) would double the steps' own lines.
    with _environment(environment), logger.at_level(LogLevel.WARNING), \
            networks.parse_network_choice(NETWORK) as provider:
        scenario = _Scenario(Settings.from_env(), passphrase, report, provider)
        for phase, play in [("consortium", scenario.consortium), ("records", scenario.records),
                            ("sharing", scenario.sharing), ("study", lambda: scenario.study(rounds))]:
            started = time.monotonic()
            play()
            scenario.result.seconds[phase] = round(time.monotonic() - started, 1)
        return scenario.result


class _Scenario:
    """The scenario's state as it unfolds: the cast, each member's RecordService, the result so far."""

    def __init__(self, settings: Settings, passphrase: str, report: Report, provider: Any) -> None:
        from ape import accounts

        self.settings, self.passphrase, self.report, self.provider = settings, passphrase, report, provider
        self.uri = provider.http_uri
        test_accounts = accounts.test_accounts
        self.admin = test_accounts[ADMIN]
        self.accounts = {name: test_accounts[index] for name, index in {**HOSPITALS, **PATIENTS, **OTHERS}.items()}
        self.gas: dict[str, list[int]] = {}
        self.result = DemoResult(NETWORK, int(provider.chain_id), "", folder=str(settings.home))
        self.store = open_store(settings)
        self.services: dict[str, RecordService] = {}
        self.by_name: dict[str, DemoRecord] = {}

    # Consortium ---------------------------------------------------------------------------------

    def consortium(self) -> None:
        contracts = deploy_contracts(self.admin)
        for each in contracts.deployed:
            self._gas(f"deploy_{_snake(each.name)}", each.gas_used)
        self.access = contracts.access
        self.result.contract, self.result.registry = contracts.access.address, contracts.registry.address
        self.report.step("deploy", f"MedicalAccess {self.result.contract} and RoundRegistry {self.result.registry} "
                                   f"on chain {self.result.chain_id} (admin: test account {ADMIN})")

        admin = AccessClient(self.access, self.admin)
        changes = [MemberChange(role, self.accounts[name].address, name) for name, roles in ROLES.items() for role in roles]
        with self._measure("add_members", admin):
            add_members(admin, changes)
        counts = (f"{len(HOSPITALS)} hospitals, a doctor, a researcher, an emergency physician, {len(PATIENTS)} patients "
                  "and a study coordinator")
        self.report.step("members", f"{counts}: {len(changes)} roles in one transaction {admin.sent[-1].tx_hash}")

        members = [name for name in self.accounts if name != STRANGER]
        with self.report.progress("keys", len(self.accounts)) as advance:
            for name in self.accounts:
                client = AccessClient(self.access, self.accounts[name])
                suite = KeySuite.MLKEM768_X25519 if name == DOCTOR else KeySuite.X25519
                if name in members:
                    with self._measure("publish_key_pq" if name == DOCTOR else "publish_key", client):
                        keystore = ensure_published_key(client, self.settings, self.passphrase, suite=suite)
                else:  # where `medshare` looks for it, as for the members'
                    keystore = open_keystore(self.settings.keystore_path(client.address), self.passphrase, suite=suite)
                index = RecordIndex.for_contract(self.settings.home, self.result.chain_id, self.access.address)
                self.services[name] = RecordService(client, self.store, keystore, index)
                advance(1)
        self.report.step("keys", f"{len(members)} members published encryption keys (the doctor's hybrid "
                                 "post-quantum MLKEM768-X25519); the stranger holds a key but no role")

    # Records ------------------------------------------------------------------------------------

    def records(self) -> None:
        """Each hospital exports its share of the breast-cancer data, one CSV a patient row group, and uploads it."""
        from fl.data import federated_breast_cancer

        exports = self.settings.home / "exports"
        exports.mkdir()
        shares = federated_breast_cancer(len(HOSPITALS)).hospitals
        uploads = []
        for (hospital, share), letter in zip(zip(HOSPITALS, shares), "abc"):
            for group, patient in zip(_row_groups(share.data.num_samples, len(PATIENTS)), PATIENTS):
                name = f"tumour_panel_{letter}"
                path = exports / f"{_slug(hospital)}-{_slug(patient)}.csv"
                _export_rows(path, share.data, group)
                uploads.append((hospital, patient, name, path, len(group)))
        with self.report.progress("records", len(uploads)) as advance:
            for hospital, patient, name, path, rows in uploads:
                service = self.services[hospital]
                with self._measure("register_record", service.client):
                    entry = service.upload(path, self.accounts[patient].address, name)
                record = DemoRecord(f"{hospital}/{patient}", hospital, patient, entry.record_id, entry.cid,
                                    entry.version, rows, _sha256(path))
                self.result.records.append(record)
                self.by_name[record.name] = record
                advance(1)
        total = sum(record.rows for record in self.result.records)
        self.report.step("records", f"{len(uploads)} encrypted records ({total} rows of breast-cancer data, one CSV "
                                    f"per patient row group at each hospital) in the embedded store {self.settings.ipfs_dir}")

    # Sharing ------------------------------------------------------------------------------------

    def sharing(self) -> None:
        a_a, b_b, c_c = self.by_name["Hospital A/patient A"], self.by_name["Hospital B/patient B"], \
            self.by_name["Hospital C/patient C"]
        now = self.services[DOCTOR].client.now()

        hospital_a = self.services["Hospital A"]
        with self._measure("grant", hospital_a.client):
            hospital_a.grant(_id(a_a), [self._address(DOCTOR)], now + GRANT_DAYS * ONE_DAY)
        self._read(DOCTOR, a_a, True, "grant")
        self.report.step("grant", f"Hospital A grants the doctor {a_a.name} for {GRANT_DAYS} days, key share "
                                  f"included: doctor {self._said(DOCTOR, a_a)}")

        patient_b = self.services["patient B"]
        signed = sign_grant(self.accounts["patient B"], patient_b.client, _id(b_b), self._address(DOCTOR),
                            now + GRANT_DAYS * ONE_DAY)
        hospital_b = self.services["Hospital B"]
        with self._measure("grant_by_signature", hospital_b.client):
            hospital_b.relay_signed_grant(signed)
        self._read(DOCTOR, b_b, True, "patient-signed grant")
        self._read(DOCTOR, c_c, False, "no grant")
        self.report.step("signed grant", f"patient B signs an EIP-712 grant for the doctor (no gas), Hospital B "
                                         f"relays it in {hospital_b.client.sent[-1].tx_hash}: doctor on {b_b.name} "
                                         f"{self._said(DOCTOR, b_b)}, on {c_c.name} {self._said(DOCTOR, c_c)}")

        try:
            hospital_a.grant(_id(a_a), [self._address(RESEARCHER)], now + GRANT_DAYS * ONE_DAY)
            refused = "sent (!)"
        except AccessRefused:
            refused = "refused before anything was sent"
        self._read(RESEARCHER, a_a, False, "no consent")
        patient_a = self.services["patient A"]
        with self._measure("set_consent", patient_a.client):
            patient_a.set_consent(_id(a_a), self._address(RESEARCHER), now + CONSENT_DAYS * ONE_DAY)
        with self._measure("grant", hospital_a.client):
            hospital_a.grant(_id(a_a), [self._address(RESEARCHER)], now + GRANT_DAYS * ONE_DAY)
        self._read(RESEARCHER, a_a, True, "consent")
        self.report.step("consent", f"researcher on {a_a.name} without patient A's consent {self._said(RESEARCHER, a_a, 0)} "
                                    f"(Hospital A's grant {refused}); patient A consents for {CONSENT_DAYS} days, "
                                    f"Hospital A grants: researcher {self._said(RESEARCHER, a_a)}")

        self._read(STRANGER, a_a, False, "stranger")
        self.report.step("stranger", f"an account with no role asks for {a_a.name}: {self._said(STRANGER, a_a)}")

        self._break_glass(c_c)
        self._revoke(a_a)

    def _break_glass(self, record: DemoRecord) -> None:
        self._read(EMERGENCY, record, False, "before break-glass")
        medic, hospital = self.services[EMERGENCY], self.services[record.hospital]
        with self._measure("open_emergency_access", medic.client):
            until = medic.open_emergency_access(_id(record), "unconscious patient in the emergency room: allergies?",
                                                BREAK_GLASS_SECONDS)
        with self._measure("share_key", hospital.client):
            hospital.share(_id(record), [self._address(EMERGENCY)])
        self._read(EMERGENCY, record, True, "break-glass")
        trail = hospital.client.audit_trail(_id(record))
        opened = [entry for entry in trail if entry.event == "EmergencyAccessOpened"]
        reads = [entry for entry in trail if entry.event == "AccessLogged" and entry.account == self._address(EMERGENCY)]
        if not opened or not reads:
            raise DemoError(f"the audit trail of {record.name} lacks the break-glass opening or the read")
        self.report.step("break-glass", f"emergency physician on {record.name} {self._said(EMERGENCY, record, 0)}; "
                                        f"opens break-glass with a reason in {opened[0].tx_hash} (until "
                                        f"{show_time(until)}), {record.hospital} shares the key: "
                                        f"{self._said(EMERGENCY, record)}; audit trail: {_trail_summary(trail)}")

    def _revoke(self, record: DemoRecord) -> None:
        hospital = self.services[record.hospital]
        sent = len(hospital.client.sent)
        rotated = hospital.revoke(_id(record), self._address(DOCTOR), rotate=True)
        revoke_tx, rotate_tx = hospital.client.sent[sent:sent + 2]
        self._gas("revoke", revoke_tx.gas_used)
        self._gas("rotate", rotate_tx.gas_used)
        updated = DemoRecord(**{**asdict(record), "cid": str(rotated.cid), "version": rotated.version})
        self.result.records[self.result.records.index(record)] = updated
        self.by_name[record.name] = updated
        self._read(DOCTOR, updated, False, "revoked")
        self._read(RESEARCHER, updated, True, "kept across rotation")
        self._read(record.patient, updated, True, "own record")
        self.report.step("revoke", f"Hospital A revokes the doctor ({revoke_tx.tx_hash}) and rotates {record.name} to "
                                   f"version {rotated.version} under a new key ({rotate_tx.tx_hash}): doctor "
                                   f"{self._said(DOCTOR, updated)}, researcher {self._said(RESEARCHER, updated)}, "
                                   f"{record.patient} (their own record) {self._said(record.patient, updated)}")

    def _read(self, who: str, record: DemoRecord, expected: bool, step: str) -> AccessCheck:
        service = self.services[who]
        out = self.settings.home / "reads" / f"{_slug(who)}-{_slug(record.name)}-v{record.version}.csv"
        out.parent.mkdir(exist_ok=True)
        try:
            with self._measure("fetch", service.client):
                service.fetch(_id(record), out, overwrite=True)
        except AccessRefused:
            got = False
        else:
            got = True
            if _sha256(out) != record.sha256:
                raise DemoError(f"{who} read {record.name} but the bytes differ from {record.hospital}'s export")
        check = AccessCheck(who, record.name, expected, got, step)
        self.result.access_checks.append(check)
        return check

    def _said(self, who: str, record: DemoRecord, nth: int = -1) -> str:
        """How ``who``'s ``nth`` read of ``record`` went, against what was expected."""
        check = [c for c in self.result.access_checks if c.who == who and c.record == record.name][nth]
        outcome = "reads it" if check.got else "refused"
        return outcome if check.passed else f"{outcome} (NOT AS EXPECTED)"

    # Study --------------------------------------------------------------------------------------

    def study(self, rounds: int) -> None:
        from offchain.rounds.runner import RunSettings, StudyAccounts, run_study

        first_block = int(self.provider.web3.eth.block_number) + 1
        accounts = StudyAccounts(OTHERS[COORDINATOR], OTHERS[RESEARCHER], tuple(HOSPITALS.values()))
        run = RunSettings(rounds=rounds, hospitals=len(HOSPITALS), rpc=self.uri, passphrase=self.passphrase,
                          accounts=accounts)
        started = time.monotonic()
        outcome = run_study(run, self.settings, echo=lambda line: self.report.step("study", line), progress=True)
        self.result.study, self.result.plot = outcome.study, outcome.plot
        self.result.rounds = outcome.rounds
        for operation, gas in _registry_gas(self.provider, outcome.contract, first_block).items():
            self.gas.setdefault(operation, []).extend(gas)
        self.result.gas = {operation: round(sum(used) / len(used)) for operation, used in self.gas.items()}
        verified = sum(entry.verified for entry in outcome.rounds)
        self.report.step("rounds", f"{len(outcome.rounds)} rounds committed on chain by {len(HOSPITALS)} hospital nodes "
                                   f"and a coordinator (separate processes) in {time.monotonic() - started:.0f} s; "
                                   f"{verified} verified bit for bit by the researcher; plot {outcome.plot}")
        if len(outcome.rounds) != rounds or verified != rounds:
            raise DemoError(f"{rounds} rounds were asked for, {len(outcome.rounds)} committed, {verified} verified")

    # Helpers ------------------------------------------------------------------------------------

    def _address(self, name: str) -> str:
        return self.accounts[name].address

    def _gas(self, operation: str, gas: int) -> None:
        self.gas.setdefault(operation, []).append(int(gas))

    @contextlib.contextmanager
    def _measure(self, operation: str, client: AccessClient) -> Iterator[None]:
        """Book the gas of every transaction ``client`` sends inside the block under ``operation``."""
        before = len(client.sent)
        try:
            yield
        finally:
            sent: list[Sent] = client.sent[before:]
            for transaction in sent:
                self._gas(operation, transaction.gas_used)


MARKER = ".medshare-demo"
"""The file that marks a folder as a demo run's, which the next run may empty."""


def _fresh_folder(folder: Path) -> None:
    """Create ``folder`` empty; an existing one only if empty or an earlier demo run's (never anyone's files)."""
    if folder.exists():
        if not folder.is_dir():
            raise DemoError(f"{folder} is a file, not a folder for the demo's state")
        if any(folder.iterdir()) and not (folder / MARKER).exists():
            raise DemoError(f"{folder} holds files the demo did not make; name an empty or new folder with --folder")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("state of one `./run demo` run: the next run empties this folder\n")


def _registry_gas(provider: Any, registry: str, first_block: int) -> dict[str, list[int]]:
    """Gas of every RoundRegistry transaction since ``first_block``, by the method called (snake case)."""
    from ape import project
    from eth_utils import keccak

    methods = {keccak(text=abi.selector)[:4]: _snake(abi.name) for abi in project.RoundRegistry.contract_type.mutable_methods}
    web3 = provider.web3
    gas: dict[str, list[int]] = {}
    for number in range(first_block, int(web3.eth.block_number) + 1):
        for transaction in web3.eth.get_block(number, full_transactions=True).transactions:
            if transaction["to"] != registry:
                continue
            name = methods.get(bytes(transaction["input"][:4]), "registry_other")
            gas.setdefault(name, []).append(int(web3.eth.get_transaction_receipt(transaction["hash"])["gasUsed"]))
    return gas


def _trail_summary(trail: list) -> str:
    counts: dict[str, int] = {}
    for entry in trail:
        counts[entry.event] = counts.get(entry.event, 0) + 1
    return ", ".join(f"{count} {event}" for event, count in counts.items())


def _row_groups(rows: int, groups: int) -> list[range]:
    """``rows`` cut into ``groups`` consecutive groups, sizes differing by at most one."""
    bounds = [rows * i // groups for i in range(groups + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(groups)]


def _export_rows(path: Path, data: Any, rows: range) -> None:
    """The rows as a hospital would export them: a header naming the features, then the label column."""
    from sklearn.datasets import load_breast_cancer

    columns = [str(name) for name in load_breast_cancer().feature_names]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*columns, LABEL_COLUMN])
        for row in rows:
            writer.writerow([f"{float(value):.6g}" for value in data.features[row]] + [int(data.labels[row])])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _id(record: DemoRecord) -> bytes:
    return bytes.fromhex(record.record_id.removeprefix("0x"))


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block: the study's node processes and the
    library's defaults (deployments file, store, passphrase) read them."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
