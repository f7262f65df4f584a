"""``medshare fl run``: a whole study on one machine, every party its own OS process.

On the local chain (an anvil of its own, or the node at ``rpc``) it deploys
MedicalAccess and the RoundRegistry unless they are recorded there already,
gives the coordinator and K hospitals their roles, has every party create a
keystore and publish its key, creates the study (the auditor is this
process), then starts ``medshare fl coordinator`` and ``medshare fl
participant`` for ``hospital-1`` ... ``hospital-K`` as separate processes on
the bundled breast-cancer data. They share nothing but the chain and the
store (``$MEDSHARE_HOME/ipfs``). This process follows the chain, scores
each committed aggregate on the held-out test split, verifies every round
as the study's auditor, and plots test accuracy by round.

Accounts (anvil's test accounts): 0 deploys and administers, 1 coordinates,
2 audits, 3 to K+2 are the hospitals (funded from account 0 when anvil did
not fund them). The run is remembered in ``$MEDSHARE_HOME/fl/last-run.json``
so ``medshare fl verify --rpc URL`` finds its study and auditor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from offchain.addressbook import remember_names
from offchain.chain import AccessClient, Role
from offchain.crypto import Keystore
from offchain.deploy import deploy
from offchain.deployments import ACCESS_CONTRACT, find_deployment
from offchain.deployments import DeploymentNotFound
from offchain.ipfs import open_store
from offchain.rounds.config import StudyConfig
from offchain.rounds.errors import RoundsError
from offchain.rounds.network import REGISTRY_CONTRACT, rounds_client
from offchain.rounds.study import Member
from offchain.rounds.verifier import verify_study
from offchain.settings import Settings

ADMIN, COORDINATOR, AUDITOR, FIRST_HOSPITAL = 0, 1, 2, 3
FUNDING_WEI = 100 * 10**18
NODE_TIMEOUT_SECONDS = 1800
DEFAULT_NETWORK = "ethereum:local:foundry"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class StudyAccounts:
    """Which of anvil's test accounts coordinates, audits and trains (by index); the hospitals default
    to the accounts from FIRST_HOSPITAL on. ``./run demo`` names its consortium's own."""

    coordinator: int = COORDINATOR
    auditor: int = AUDITOR
    hospitals: tuple[int, ...] = ()

    def hospital(self, i: int) -> int:
        return self.hospitals[i] if self.hospitals else FIRST_HOSPITAL + i


@dataclass(frozen=True)
class RunSettings:
    rounds: int
    hospitals: int
    aggregator: str = "fedavg"
    rpc: str | None = None
    passphrase: str = ""
    round_seconds: int = 600
    accounts: StudyAccounts = StudyAccounts()
    select: int | None = None  # invite this many hospitals a round (also the quorum); None: all of them

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise RoundsError(f"--rounds must be at least 1, got {self.rounds}")
        if not 1 <= self.hospitals <= 50:
            raise RoundsError(f"--hospitals must be 1 to 50, got {self.hospitals}")
        if self.accounts.hospitals and len(self.accounts.hospitals) != self.hospitals:
            raise RoundsError(f"{self.hospitals} hospitals but {len(self.accounts.hospitals)} hospital accounts")
        if self.select is not None and not 1 <= self.select <= self.hospitals:
            raise RoundsError(f"--select must be 1 to --hospitals ({self.hospitals}), got {self.select}")


@dataclass(frozen=True)
class RoundResult:
    round: int
    base_cid: str
    aggregate_cid: str
    participants: list[str]
    test_accuracy: float
    verified: bool


@dataclass
class RunResult:
    study: int
    contract: str
    access: str
    rounds: list[RoundResult] = field(default_factory=list)
    plot: str = ""

    def to_json(self) -> dict:
        return {"study": self.study, "contract": self.contract, "access": self.access,
                "rounds": [asdict(entry) for entry in self.rounds], "plot": self.plot}


@dataclass(frozen=True)
class LastRun:
    """What ``medshare fl verify`` needs to check the latest run with no options."""

    chain_id: int
    access: str
    registry: str
    study: int
    auditor: str

    @staticmethod
    def path(settings: Settings) -> Path:
        return settings.home / "fl" / "last-run.json"

    def save(self, settings: Settings) -> None:
        path = self.path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, settings: Settings) -> LastRun:
        path = cls.path(settings)
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise RoundsError(f"no `medshare fl run` recorded in {path}: name the study with --study") from None
        except (ValueError, TypeError) as error:
            raise RoundsError(f"{path} is damaged ({error}); name the study with --study") from None


def hospital_name(index: int) -> str:
    return f"hospital-{index}"


def run_study(run: RunSettings, settings: Settings, *, echo: Echo, progress: bool = True) -> RunResult:
    """Everything ``medshare fl run`` does; returns the per-round results (printing is the caller's)."""
    from ape import accounts, networks

    provider_settings = {"host": run.rpc} if run.rpc else {}
    # Its own anvil is stopped when the run ends (not at interpreter exit, after the JSON was printed).
    with networks.parse_network_choice(DEFAULT_NETWORK, provider_settings, disconnect_after=run.rpc is None) as provider:
        uri = provider.http_uri if hasattr(provider, "http_uri") else provider.uri
        test_accounts = accounts.test_accounts
        admin = test_accounts[ADMIN]
        access_contract, registry_contract = ensure_deployed(admin, record=run.rpc is not None)
        coordinator = test_accounts[run.accounts.coordinator]
        auditor = test_accounts[run.accounts.auditor]
        hospitals = [test_accounts[run.accounts.hospital(i)] for i in range(run.hospitals)]
        members = enrol(access_contract, registry_contract, admin, coordinator, hospitals, [auditor],
                        settings, run.passphrase)
        from fl.models import ModelSpec
        from fl.data import load_split

        train, test = load_split()
        config = StudyConfig(ModelSpec("logistic", test.num_features), tuple(h.address for h in hospitals),
                             (auditor.address,), run.aggregator, round_seconds=run.round_seconds)
        study = members[coordinator.address].create_study(config, min_updates=run.select or len(hospitals))
        echo(f"study {study.number} on chain {provider.chain_id}: RoundRegistry {registry_contract.address}, "
             f"{run.hospitals} hospitals, {run.rounds} rounds, aggregator {run.aggregator}")
        LastRun(provider.chain_id, access_contract.address, registry_contract.address, study.number,
                f"TEST::{run.accounts.auditor}").save(settings)

        common = ["--rpc", uri, "--contract", access_contract.address, "--registry", registry_contract.address,
                  "--study", str(study.number), "--rounds", str(run.rounds)]
        env = {**os.environ, "MEDSHARE_HOME": str(settings.home), "MEDSHARE_PASSPHRASE": run.passphrase}
        logs = settings.home / "fl" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        selection = ["--select", str(run.select)] if run.select else []
        nodes = {"coordinator": _spawn(["coordinator", "--account", f"TEST::{run.accounts.coordinator}", *selection,
                                        *common], env, logs / "coordinator.log")}
        for i in range(1, run.hospitals + 1):
            nodes[hospital_name(i)] = _spawn(
                ["participant", "--account", f"TEST::{run.accounts.hospital(i - 1)}", "--share", f"{i}/{run.hospitals}", *common],
                env, logs / f"{hospital_name(i)}.log")
        names = {h.address: hospital_name(i) for i, h in enumerate(hospitals, start=1)}
        remember_names(settings, names)  # so reports (fl status, the portal) name the hospitals too
        auditor_member = members[auditor.address]
        try:
            result = _follow(auditor_member, study.number, run, nodes, logs, names, test, progress)
        finally:
            for process in nodes.values():
                if process.poll() is None:
                    process.kill()
                process.wait()
        verdicts = {verdict.round: verdict for verdict in verify_study(auditor_member, study.number)}
        result.rounds = [RoundResult(**{**asdict(entry), "verified": verdicts[entry.round].verified})
                         for entry in result.rounds]
        result.contract, result.access = registry_contract.address, access_contract.address
        result.plot = str(plot_accuracy(result, settings.home / "fl" / f"study-{study.number}-accuracy.png"))
        return result


def ensure_deployed(admin, *, record: bool):
    """MedicalAccess and RoundRegistry on the connected chain: the recorded ones if live, else deployed now."""
    from ape import chain, project

    if record:
        try:
            access = find_deployment(chain.chain_id, name=ACCESS_CONTRACT)
            registry = find_deployment(chain.chain_id, name=REGISTRY_CONTRACT)
            if chain.provider.get_code(access.address) and chain.provider.get_code(registry.address):
                return project.MedicalAccess.at(access.address), project.RoundRegistry.at(registry.address)
        except DeploymentNotFound:
            pass
        # None recorded, or gone with an earlier chain: deploy and record anew.
        deployed = {each.name: each.address for each in deploy(admin, admin.address, force=True)}
        access, registry = deployed[ACCESS_CONTRACT], deployed[REGISTRY_CONTRACT]
        return project.MedicalAccess.at(access), project.RoundRegistry.at(registry)
    access = admin.deploy(project.MedicalAccess, admin)
    registry = admin.deploy(project.RoundRegistry, access)
    return access, registry


def ensure_published_key(access: AccessClient, settings: Settings, passphrase: str) -> Keystore:
    """The account's keystore (created on first use) with its current key published."""
    from offchain.cli.session import keystore_path

    path = keystore_path(settings, access.address)
    if path.exists():
        keystore = Keystore.open(path, passphrase)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        keystore = Keystore.create(path, passphrase)
    published = access.encryption_key(access.address)
    if published.version != keystore.current_version or published.public_key != keystore.public_key():
        if published.version + 1 != keystore.current_version:
            raise RoundsError(f"{access.address}: the chain holds key version {published.version}, keystore {path} "
                              f"is at {keystore.current_version}")
        access.publish_encryption_key(keystore.public_key(), keystore.suite())
    return keystore


def enrol(access_contract, registry_contract, admin, coordinator, hospitals, others, settings: Settings,
          passphrase: str) -> dict[str, Member]:
    """Make the accounts a consortium's study members: funded, given their roles, keys published.

    ``coordinator`` gets COORDINATOR, ``hospitals`` PARTICIPANT, ``others``
    (auditors) RESEARCHER unless they hold a role already (publishing a key
    takes membership); each gets a keystore in ``settings.home`` and its key
    published. Returns each account's :class:`Member`, by address.
    """
    everyone = [coordinator, *hospitals, *others]
    _fund(admin, everyone)
    _grant(access_contract, admin, Role.COORDINATOR, [coordinator])
    _grant(access_contract, admin, Role.PARTICIPANT, hospitals)
    _grant(access_contract, admin, Role.RESEARCHER, [a for a in others if not int(access_contract.rolesOf(a.address))])
    store = open_store(settings)
    members = {}
    for account in everyone:
        access = AccessClient(access_contract, account)
        keystore = ensure_published_key(access, settings, passphrase)
        members[account.address] = Member(rounds_client(access, registry_contract.address), access, store, keystore)
    return members


def _fund(admin, accounts) -> None:
    for account in accounts:
        if account.balance == 0:
            admin.transfer(account, FUNDING_WEI)


def _grant(access_contract, admin, role: Role, accounts) -> None:
    role_id = getattr(access_contract, f"{role.name}_ROLE")()
    for account in accounts:
        if not int(access_contract.rolesOf(account.address)) & role:
            access_contract.grantRole(role_id, account.address, sender=admin)


def _spawn(arguments: list[str], env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from offchain.cli import main; main()", "fl", *arguments]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _follow(auditor: Member, study: int, run: RunSettings, nodes: dict, logs: Path, names: dict, test,
            progress: bool) -> RunResult:
    """Wait for the nodes, scoring each committed round as it lands."""
    import click

    from offchain.rounds.study import Study

    view = Study(auditor, study)
    result = RunResult(study, "", "")
    closed = 0
    deadline = time.monotonic() + NODE_TIMEOUT_SECONDS
    with click.progressbar(length=run.rounds, label="rounds", file=sys.stderr if progress else open(os.devnull, "w")) as bar:
        while closed < run.rounds:
            for name, process in nodes.items():
                code = process.poll()
                if code not in (None, 0):
                    raise RoundsError(f"{name} exited with status {code}: {_last_line(logs / f'{name}.log')}")
            view.refresh()
            for number in range(closed + 1, view.info.round_count + 1):
                info = auditor.rounds.round(study, number)
                if info.state == "open":
                    break
                if info.state == "committed":
                    result.rounds.append(_score(view, number, info, names, test))
                closed = number
                bar.update(1)
            if time.monotonic() > deadline:
                raise RoundsError(f"the study did not finish in {NODE_TIMEOUT_SECONDS} s; see the logs in {logs}")
            time.sleep(0.2)
    for name, process in nodes.items():
        code = process.wait(timeout=NODE_TIMEOUT_SECONDS)
        if code != 0:
            raise RoundsError(f"{name} exited with status {code}: {_last_line(logs / f'{name}.log')}")
    return result


def _score(view, number: int, info, names: dict, test) -> RoundResult:
    from offchain.rounds.aggregate import committed_base_round
    from offchain.rounds.report import round_accuracy

    accuracy = round_accuracy(view, number, test)
    base = view.model_ref(committed_base_round(view, number))
    return RoundResult(number, str(base.cid), str(info.aggregate.cid),
                       [names.get(account, account) for account in info.counted_submitters], accuracy, False)


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def plot_accuracy(result: RunResult, path: Path) -> Path:
    """A PNG of test accuracy by round."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4))
    axes.plot([entry.round for entry in result.rounds], [entry.test_accuracy for entry in result.rounds], marker="o")
    axes.set_xlabel("round")
    axes.set_ylabel("test accuracy")
    axes.set_title(f"study {result.study}: committed aggregates on the held-out test split")
    axes.set_ylim(0, 1)
    axes.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    pyplot.close(figure)
    return path
