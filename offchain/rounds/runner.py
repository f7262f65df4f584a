"""``medshare fl run``: a whole study on one machine, every party its own OS process.

On the local chain (an anvil of its own, or the node at ``rpc``) it deploys
MedicalAccess and the RoundRegistry unless they are recorded there already,
gives the coordinator and K hospitals their roles, has every party create a
keystore and publish its key (:mod:`offchain.consortium`), creates the study (the auditor is this
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

With secure aggregation (``secure=True``), each round runs the protocol's
phases through the chain, and ``drops`` make hospitals go silent mid-round:
the node posts the message of its :class:`~offchain.rounds.faults.DropPoint`
for that round, then holds (posts nothing more), and this process kills it
with SIGKILL; once the round is closed it is started again, so it is silent in
that round only (:mod:`offchain.rounds.nodes`).

With ``sites="separate"`` the parties are apart as on different machines: the
coordinator, each hospital and the auditor (this process) get a home of their
own under ``$MEDSHARE_HOME/sites/`` (their keystores are made there) and an IPFS
node of their own on loopback (:mod:`offchain.ipfs.sites`); updates and
aggregates move between the nodes over libp2p, and every upload is pinned on
the uploader's node and the auditor's, the consortium's pinning node.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fl.client import LocalTrainingConfig
from fl.compression import CompressionConfig
from fl.models import ModelSpec
from fl.privacy import DEFAULT_DELTA
from fl.secure_aggregation import SecureAggregationError, SessionParameters
from offchain.addressbook import remember_names
from offchain.consortium import deploy_contracts, enrol, recorded_or_deployed
from offchain.rounds.config import DEFAULT_ACCOUNTANT, DEFAULT_AGGREGATOR, DEFAULT_ROUND_SECONDS, StudyConfig
from offchain.rounds.config import default_threshold, secure_quorum
from offchain.rounds.errors import RoundsError, RunSettingsError
from offchain.rounds.faults import DropPoint, Dropout, hospital_name
from offchain.rounds.nodes import NODE_TIMEOUT_SECONDS, Nodes
from offchain.rounds.plot import plot_accuracy
from offchain.rounds.privacy import checked_accountant, checked_budget, spend_by_name
from offchain.rounds.report import study_report
from offchain.rounds.run_results import RoundResult, RunResult
from offchain.rounds.study import Member
from offchain.settings import Settings

ADMIN, COORDINATOR, AUDITOR, FIRST_HOSPITAL = 0, 1, 2, 3
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


SITES = ("shared", "separate")
AUDITOR_SITE = "auditor"  # with separate sites, the auditor's node is the consortium's pinning node


@dataclass(frozen=True)
class RunSettings:
    rounds: int
    hospitals: int
    aggregator: str = DEFAULT_AGGREGATOR
    rpc: str | None = None
    passphrase: str = ""
    round_seconds: int = DEFAULT_ROUND_SECONDS
    select: int | None = None  # invite this many hospitals a round (also the quorum); None: all of them
    dp_epsilon: float | None = None  # each hospital's budget over the whole study (DP-SGD calibrated to it)
    dp_delta: float = DEFAULT_DELTA
    dp_accountant: str = DEFAULT_ACCOUNTANT  # how the budget is accounted: "rdp" or "pld"
    distributed_dp: bool = False  # with secure aggregation: noise shares inside the secure sum, not DP-SGD
    accounts: StudyAccounts = StudyAccounts()
    secure: bool = False  # secure aggregation: the coordinator sees only the sum of the updates
    threshold: int | None = None  # its t (None: the smallest t over half the hospitals, at least 2)
    phase_seconds: int | None = None  # how long a secure phase waits for a silent hospital (None: the default)
    drops: tuple[Dropout, ...] = ()
    training: LocalTrainingConfig | None = None  # local training (None: the default, or DP-SGD's)
    sites: str = "shared"  # "separate": every party its own home and IPFS node (offchain.ipfs.sites)
    model: ModelSpec | None = None  # the study's model (None: logistic on the bundled table)
    images: Path | None = None  # hospital-N trains on its image folder images/hospital-N (None: the bundled table)
    aggregator_params: dict = field(default_factory=dict)  # the aggregator's settings (e.g. trim_ratio)
    compression: CompressionConfig | None = None  # every update compressed (top-k, int8, or both)

    def __post_init__(self) -> None:
        if self.sites not in SITES:
            raise RunSettingsError(f"--sites must be one of {', '.join(SITES)}, not {self.sites!r}")
        if self.rounds < 1:
            raise RunSettingsError(f"--rounds must be at least 1, got {self.rounds}")
        if not 1 <= self.hospitals <= 50:
            raise RunSettingsError(f"--hospitals must be 1 to 50, got {self.hospitals}")
        if self.select is not None and not 1 <= self.select <= self.hospitals:
            raise RunSettingsError(f"--select must be 1 to --hospitals ({self.hospitals}), got {self.select}")
        if self.dp_epsilon is not None:
            checked_budget(self.dp_epsilon, self.dp_delta)
        checked_accountant(self.dp_accountant)
        if self.distributed_dp and (self.dp_epsilon is None or not self.secure):
            raise RunSettingsError("distributed DP needs a budget (--dp-epsilon) and --secure-aggregation")
        if self.accounts.hospitals and len(self.accounts.hospitals) != self.hospitals:
            raise RunSettingsError(f"{self.hospitals} hospitals but {len(self.accounts.hospitals)} hospital accounts")
        object.__setattr__(self, "drops", tuple(self.drops))
        if self.secure:
            self._check_secure()
        elif self.threshold is not None or self.drops or self.phase_seconds is not None:
            raise RunSettingsError("--threshold, --drop and phase seconds need --secure-aggregation")
        self._check_study()

    def _check_study(self) -> None:
        """The study's config as the run will make it (aggregator, round and phase lengths), checked
        now on stand-in addresses, so nothing is deployed for a run that could not create its study."""
        from fl.models import ModelSpec
        from offchain.rounds.errors import StudyConfigError

        stand_ins = tuple("0x" + f"{i + 1:040x}" for i in range(self.hospitals))
        try:
            self.study_config(stand_ins, (), ModelSpec("logistic", 1), calibrate=False)
        except StudyConfigError as error:
            raise RunSettingsError(str(error)) from None

    def study_config(self, participants, auditors, model: ModelSpec | None = None, *,
                     calibrate: bool = True) -> StudyConfig:
        """The study's config as the run makes it (:meth:`StudyConfig.from_options`); without
        ``calibrate``, no DP (which takes calibrating the noise): the rest, checked."""
        private = {} if not calibrate or self.dp_epsilon is None else dict(
            dp_epsilon=self.dp_epsilon, dp_delta=self.dp_delta, dp_rounds=self.rounds, dp_accountant=self.dp_accountant,
            distributed_dp=self.distributed_dp)
        compression = self.compression
        return StudyConfig.from_options(
            participants, auditors, model=model or self.model, aggregator=self.aggregator,
            aggregator_params=self.aggregator_params, round_seconds=self.round_seconds, training=self.training,
            secure=self.secure, threshold=self.secure_threshold if self.secure else None,
            phase_seconds=self.phase_seconds, **private,
            top_k=None if compression is None else compression.top_k_ratio,
            int8=compression is not None and compression.quantize_8bit)

    def _check_secure(self) -> None:
        from fl.aggregation import sum_based_aggregators

        if self.aggregator not in sum_based_aggregators():
            raise RunSettingsError(f"--secure-aggregation reveals only the sum of the updates, which aggregator "
                                   f"{self.aggregator!r} cannot work from; use one of "
                                   f"{', '.join(sum_based_aggregators())}")
        # The threshold must work for the study's hospitals and, with --select, for the K a round invites.
        taking_part = self.select or self.hospitals
        threshold = self.secure_threshold
        for count in dict.fromkeys((self.hospitals, taking_part)):
            try:
                SessionParameters(b"medshare-run", threshold, 1).check_roster_size(count)
            except (ValueError, SecureAggregationError) as error:
                raise RunSettingsError(f"--secure-aggregation with {count} hospitals: {error}") from None
        by_round: dict[int, set[int]] = {}
        for drop in self.drops:
            if not 1 <= drop.hospital <= self.hospitals:
                raise RunSettingsError(f"--drop {drop}: there is no {drop.name} (hospitals are hospital-1 to "
                                       f"hospital-{self.hospitals})")
            if not 1 <= drop.round <= self.rounds:
                raise RunSettingsError(f"--drop {drop}: there is no round {drop.round} (rounds are 1 to {self.rounds})")
            if drop.hospital in by_round.setdefault(drop.round, set()):
                raise RunSettingsError(f"--drop {drop}: {drop.name} already goes silent in round {drop.round}")
            by_round[drop.round].add(drop.hospital)
        for number, silent in sorted(by_round.items()):
            # Those silent before their masked input leave the sum; those silent after it leave the unmasking.
            inputs = taking_part - sum(1 for d in self.drops if d.round == number and d.after != DropPoint.MASKED_INPUT)
            answering = taking_part - len(silent)
            needed = secure_quorum(threshold)
            if inputs < needed or answering < threshold:
                raise RunSettingsError(
                    f"round {number}: with {len(silent)} of {taking_part} hospitals silent, {inputs} masked inputs "
                    f"and {answering} unmasking answers remain; threshold {threshold} needs {needed} inputs and "
                    f"{threshold} answers")

    @property
    def quorum(self) -> int:
        """The updates a round must count: every invited hospital's; under secure aggregation, as few
        as the protocol can unmask (dropouts are what it is for)."""
        if self.secure:
            return secure_quorum(self.secure_threshold)
        return self.select or self.hospitals

    @property
    def secure_threshold(self) -> int:
        """The run's t: as given, else the smallest over half the hospitals (and at least 2)."""
        return self.threshold if self.threshold is not None else default_threshold(self.hospitals)


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


class RunInProgress(RoundsError):
    """Another ``medshare fl run`` uses this home: its keystores, logs and plot would be shared."""


@contextmanager
def _one_run_per_home(settings: Settings) -> Iterator[None]:
    """Hold ``$MEDSHARE_HOME/fl/run.lock`` for the run; refuse at once if another run holds it."""
    path = settings.home / "fl" / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise RunInProgress(f"another `medshare fl run` (pid {lock.read().strip() or '?'}) is using "
                                f"{settings.home}; wait for it, or give this run its own MEDSHARE_HOME") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def run_study(run: RunSettings, settings: Settings, *, echo: Echo, progress: bool = True) -> RunResult:
    """Everything ``medshare fl run`` does; returns the per-round results (printing is the caller's).

    One run at a time per home (:class:`RunInProgress` otherwise)."""
    with _one_run_per_home(settings):
        return _run_study(run, settings, echo=echo, progress=progress)


def _run_study(run: RunSettings, settings: Settings, *, echo: Echo, progress: bool) -> RunResult:
    from ape import accounts, networks

    provider_settings = {"host": run.rpc} if run.rpc else {}
    # Its own anvil is stopped when the run ends (not at interpreter exit, after the JSON was printed).
    with networks.parse_network_choice(DEFAULT_NETWORK, provider_settings, disconnect_after=run.rpc is None) as provider, \
            _sites(run, settings) as sites:
        uri = provider.http_uri if hasattr(provider, "http_uri") else provider.uri
        test_accounts = accounts.test_accounts
        admin = test_accounts[ADMIN]
        # A node of the user's keeps its contracts across runs; our own anvil's vanish with it, unrecorded.
        contracts = recorded_or_deployed(admin) if run.rpc is not None else deploy_contracts(admin, record=False)
        access_contract, registry_contract = contracts.access, contracts.registry
        coordinator = test_accounts[run.accounts.coordinator]
        auditor = test_accounts[run.accounts.auditor]
        hospitals = [test_accounts[run.accounts.hospital(i)] for i in range(run.hospitals)]
        homes = _site_homes(sites, coordinator, hospitals, auditor)
        members = enrol(access_contract, registry_contract, admin, coordinator, hospitals, [auditor],
                        settings, run.passphrase, homes=homes)
        from fl.data import load_split

        _, test = load_split()
        config = run.study_config(tuple(h.address for h in hospitals), (auditor.address,))
        study = members[coordinator.address].create_study(config, min_updates=run.quorum,
                                                          allowed_models=_allowed_models(settings))
        secure = f", secure aggregation (threshold {run.secure_threshold})" if run.secure else ""
        echo(f"study {study.number} on chain {provider.chain_id}: RoundRegistry {registry_contract.address}, "
             f"{run.hospitals} hospitals, {run.rounds} rounds, aggregator {run.aggregator}{secure}")
        LastRun(provider.chain_id, access_contract.address, registry_contract.address, study.number,
                f"TEST::{run.accounts.auditor}").save(settings)

        common = ["--rpc", uri, "--contract", access_contract.address, "--registry", registry_contract.address,
                  "--study", str(study.number), "--rounds", str(run.rounds)]
        env = {**os.environ, "MEDSHARE_HOME": str(settings.home), "MEDSHARE_PASSPHRASE": run.passphrase}
        nodes = Nodes(settings.home / "fl" / "logs", env, run.drops, run.rounds,
                      {name: site.env() for name, site in (sites or {}).items()})
        selection = ["--select", str(run.select)] if run.select else []
        nodes.start("coordinator", ["coordinator", "--account", f"TEST::{run.accounts.coordinator}", *selection,
                                    *common])
        for i in range(1, run.hospitals + 1):
            data = ["--share", f"{i}/{run.hospitals}"] if run.images is None else \
                ["--images", str(run.images / hospital_name(i))]
            nodes.start(hospital_name(i), ["participant", "--account", f"TEST::{run.accounts.hospital(i - 1)}",
                                           *data, *common])
        names = {h.address: hospital_name(i) for i, h in enumerate(hospitals, start=1)}
        remember_names(settings, names)  # so reports (fl status, the portal) name the hospitals too
        auditor_member = members[auditor.address]
        try:
            # The bundled test split scores only the bundled table's model.
            scored = test if run.images is None else None
            _follow(auditor_member, study.number, run, nodes, progress)
        finally:
            nodes.stop()
        # What the run prints is the study's report, read from the chain once, as `fl status` shows it.
        report = study_report(auditor_member, study.number, names=names, test=scored)
        for note in report.notes:
            echo(f"note: {note}")
        result = RunResult(study.number, "", "", [RoundResult.of(entry, report.status, names)
                                                  for entry in report.rounds if entry.status.state == "committed"])
        result.contract, result.access = registry_contract.address, access_contract.address
        result.epsilon_spent, result.epsilon_budget = spend_by_name(auditor_member, study.number, names)
        result.plot = str(plot_accuracy(result, settings.home / "fl" / f"study-{study.number}-accuracy.png"))
        result.sites = run.sites
        return result


def _allowed_models(settings: Settings) -> tuple[str, ...]:
    """The model entry points the run's coordinator may build (its node settings' allowlist). The
    validation seed is drawn now, before the hospital nodes that share this home start together."""
    from offchain.rounds.node_settings import NodeSettings

    return NodeSettings.seeded(settings.home).allowlist


def _sites(run: RunSettings, settings: Settings):
    """Separate sites for the run's parties (started now, stopped when it ends), or None when they share."""
    if run.sites != "separate":
        return nullcontext(None)
    from offchain.ipfs.sites import separate_sites

    names = ["coordinator", *(hospital_name(i) for i in range(1, run.hospitals + 1)), AUDITOR_SITE]
    return separate_sites(settings.home / "sites", names, pinning=[AUDITOR_SITE], replication=2)


def _site_homes(sites, coordinator, hospitals, auditor) -> dict[str, Settings] | None:
    """Each account's own settings (home and node), by address; None when the parties share one home."""
    if sites is None:
        return None
    by_name = {"coordinator": coordinator, AUDITOR_SITE: auditor,
               **{hospital_name(i): account for i, account in enumerate(hospitals, start=1)}}
    return {by_name[name].address: site.settings for name, site in sites.items()}


def _follow(auditor: Member, study: int, run: RunSettings, nodes: Nodes, progress: bool) -> None:
    """Wait for the nodes, following the rounds as they close; silence and kill the dropped."""
    import click

    from offchain.terminal import progress_file

    view = auditor.study(study)
    closed = 0
    echo = click.echo if progress else (lambda line: None)
    deadline = time.monotonic() + NODE_TIMEOUT_SECONDS
    with click.progressbar(length=run.rounds, label="rounds", file=progress_file(progress)) as bar:
        while closed < run.rounds:
            nodes.kill_the_silent(echo)
            nodes.check()
            view.refresh()
            for number in range(closed + 1, view.info.round_count + 1):
                if view.round(number).state == "open":
                    break
                closed = number
                bar.update(1)
                nodes.restart_killed(closed, echo)
            if time.monotonic() > deadline:
                raise RoundsError(f"the study did not finish in {NODE_TIMEOUT_SECONDS} s; see the logs in {nodes.logs}")
            time.sleep(0.2)
    nodes.wait()
