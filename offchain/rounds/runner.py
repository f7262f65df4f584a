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

With secure aggregation (``secure=True``), each round runs the protocol's
phases through the chain, and ``drops`` make hospitals go silent mid-round:
the node posts the message of its :class:`DropPoint` for that round, then
holds (posts nothing more), and this process kills it with SIGKILL; once the
round is closed it is started again, so it is silent in that round only.

With ``sites="separate"`` the parties are apart as on different machines: the
coordinator, each hospital and the auditor (this process) get a home of their
own under ``$MEDSHARE_HOME/sites/`` (their keystores are made there) and an IPFS
node of their own on loopback (:mod:`offchain.ipfs.sites`); updates and
aggregates move between the nodes over libp2p, and every upload is pinned on
the uploader's node and the auditor's, the consortium's pinning node.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from offchain.addressbook import remember_names
from offchain.chain.access import AccessClient, Role
from offchain.crypto import Keystore
from offchain.chain.deploy import deploy
from offchain.chain.deployments import ACCESS_CONTRACT, find_deployment
from offchain.chain.deployments import DeploymentNotFound
from offchain.ipfs import open_store
from fl.client import LocalTrainingConfig
from fl.models import ModelSpec
from fl.compression import CompressionConfig
from offchain.rounds.config import StudyConfig
from offchain.rounds.errors import RoundsError
from offchain.rounds.node_server import NodeProcess, NodeServer, preloads_safely
from offchain.rounds.registry import REGISTRY_CONTRACT, rounds_client
from offchain.rounds.privacy import checked_accountant, checked_budget, spend_by_name, study_privacy
from offchain.rounds.study import Member
from offchain.rounds.verifier import verify_study
from fl.secure_aggregation import MIN_CLIENTS as MIN_SURVIVORS, SecureAggregationError, SessionParameters
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


def default_threshold(hospitals: int) -> int:
    """Secure aggregation's t for ``hospitals``: the smallest over half of them (so no two disjoint
    groups can each unmask), and at least 2."""
    return max(2, hospitals // 2 + 1)


def secure_quorum(threshold: int) -> int:
    """A secure study's quorum: the fewest survivors whose sum may be revealed, max(t, 3)."""
    return max(threshold, MIN_SURVIVORS)


SITES = ("shared", "separate")
AUDITOR_SITE = "auditor"  # with separate sites, the auditor's node is the consortium's pinning node


class RunSettingsError(RoundsError):
    """The options of a run contradict each other or the study (bad input: nothing was started)."""


class DropPoint(str, enum.Enum):
    """Where in a secure round a dropped hospital goes silent: once this message of its is on chain."""

    KEYS = "keys"  # its key advertisement: it sends no shares, so it is not in the round's masks at all
    SHARES = "shares"  # its encrypted shares: its pairwise masks are recovered from the others' shares
    MASKED_INPUT = "masked-input"  # its masked input: a survivor whose self mask the others' shares remove


@dataclass(frozen=True)
class Dropout:
    """Hospital number ``hospital`` (1-based, as in ``hospital-N``) goes silent in ``round`` after ``after``."""

    hospital: int
    round: int
    after: DropPoint = DropPoint.KEYS

    SYNTAX = "HOSPITAL@ROUND[:keys|shares|masked-input], e.g. hospital-2@3"

    @classmethod
    def parse(cls, text: str) -> Dropout:
        match = re.fullmatch(r"(?:hospital-)?(\d+)@(\d+)(?::([a-z-]+))?", text.strip())
        if match is None:
            raise RunSettingsError(f"--drop {text!r}: expected {cls.SYNTAX}")
        hospital, round_number, after = match.groups()
        try:
            point = DropPoint(after or DropPoint.KEYS.value)
        except ValueError:
            raise RunSettingsError(f"--drop {text!r}: {after!r} is not one of "
                                   f"{', '.join(p.value for p in DropPoint)}") from None
        return cls(int(hospital), int(round_number), point)

    @property
    def name(self) -> str:
        return hospital_name(self.hospital)

    def __str__(self) -> str:
        return f"{self.name}@{self.round}" + ("" if self.after is DropPoint.KEYS else f":{self.after.value}")


SILENT_AFTER_ENV = "MEDSHARE_FL_SILENT_AFTER"  # POINT@ROUND: a participant node that goes silent (--drop)
SILENT_MARK = "going silent after"
_POINT_SENDS = {DropPoint.KEYS: ("postSecureMessage", 0), DropPoint.SHARES: ("postSecureMessage", 1),
                DropPoint.MASKED_INPUT: ("submitUpdate", None), "private": ("submitPrivateUpdate", None)}


def go_silent_after(rounds, point: DropPoint, round_number: int, hold: Callable[[str], None]) -> None:
    """Make a participant's ``rounds`` client call ``hold`` (which never returns: the node posts
    nothing more) as soon as its ``point`` message of ``round_number`` is on chain.

    The hook sits where every transaction of the client goes out (``_send``), so it holds whatever
    path the node takes to post (a plain or a budgeted update; a key advertisement or shares).
    """
    send = rounds._send
    wanted = {_POINT_SENDS[point]} | ({_POINT_SENDS["private"]} if point is DropPoint.MASKED_INPUT else set())

    def sending(method, *args):
        receipt = send(method, *args)
        name = method.abis[0].name
        # postSecureMessage(study, round, phase, ...), submit(Private)Update(study, round, ...)
        if int(args[1]) == round_number and any(name == n and (phase is None or int(args[2]) == phase)
                                               for n, phase in wanted):
            hold(f"{SILENT_MARK} its {point.value} of round {round_number}")
        return receipt

    rounds._send = sending


def silent_after_from_env(rounds, hold: Callable[[str], None]) -> None:
    """Apply ``MEDSHARE_FL_SILENT_AFTER=POINT@ROUND`` (set by ``fl run --drop``) to a participant node."""
    value = os.environ.get(SILENT_AFTER_ENV)
    if not value:
        return
    point, _, number = value.partition("@")
    go_silent_after(rounds, DropPoint(point), int(number), hold)


@dataclass(frozen=True)
class RunSettings:
    rounds: int
    hospitals: int
    aggregator: str = "fedavg"
    rpc: str | None = None
    passphrase: str = ""
    round_seconds: int = 600
    select: int | None = None  # invite this many hospitals a round (also the quorum); None: all of them
    dp_epsilon: float | None = None  # each hospital's budget over the whole study (DP-SGD calibrated to it)
    dp_delta: float = 1e-5
    dp_accountant: str = "rdp"  # how the budget is accounted: "rdp" or "pld"
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
            StudyConfig(ModelSpec("logistic", 1), stand_ins, (), self.aggregator, round_seconds=self.round_seconds,
                        **_secure_options(self), **_update_options(self))
        except StudyConfigError as error:
            raise RunSettingsError(str(error)) from None

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
class RoundResult:
    round: int
    base_cid: str
    aggregate_cid: str
    participants: list[str]
    test_accuracy: float | None  # None: a study the bundled test split does not fit
    verified: bool
    survivors: list[str] | None = None  # secure rounds: whose masked inputs are in the sum; None: not secure
    dropped: list[str] | None = None  # secure rounds: who advertised keys but whose input is not in the sum
    # What the hospitals published about this round's model, scored on their own validation splits:
    # {"weighted": {...}, "hospitals": {"hospital-1": {...}, ...}}; None: none published (yet)
    metrics: dict | None = None


@dataclass
class RunResult:
    study: int
    contract: str
    access: str
    rounds: list[RoundResult] = field(default_factory=list)
    plot: str = ""
    epsilon_spent: dict[str, float] = field(default_factory=dict)  # by hospital name; empty without budgets
    epsilon_budget: dict[str, float] = field(default_factory=dict)
    sites: str = "shared"

    def to_json(self) -> dict:
        return {"study": self.study, "contract": self.contract, "access": self.access,
                "rounds": [asdict(entry) for entry in self.rounds], "plot": self.plot,
                "epsilon_spent": self.epsilon_spent, "epsilon_budget": self.epsilon_budget, "sites": self.sites}


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
        access_contract, registry_contract = ensure_deployed(admin, record=run.rpc is not None)
        coordinator = test_accounts[run.accounts.coordinator]
        auditor = test_accounts[run.accounts.auditor]
        hospitals = [test_accounts[run.accounts.hospital(i)] for i in range(run.hospitals)]
        homes = _site_homes(sites, coordinator, hospitals, auditor)
        members = enrol(access_contract, registry_contract, admin, coordinator, hospitals, [auditor],
                        settings, run.passphrase, homes=homes)
        from fl.models import ModelSpec
        from fl.data import load_split

        train, test = load_split()
        training, dp, distributed = run.training or LocalTrainingConfig(), None, None
        if run.dp_epsilon is not None:
            training, dp, distributed = study_privacy(
                run.dp_epsilon, run.dp_delta, run.rounds, accountant=run.dp_accountant, training=run.training,
                distributed_survivors=run.secure_threshold if run.distributed_dp else None)
        config = StudyConfig(run.model or ModelSpec("logistic", test.num_features), tuple(h.address for h in hospitals),
                             (auditor.address,), run.aggregator, training=training, dp=dp,
                             round_seconds=run.round_seconds, distributed_dp=distributed, **_secure_options(run),
                             **_update_options(run))
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
        env.pop(SILENT_AFTER_ENV, None)
        nodes = _Nodes(settings.home / "fl" / "logs", env, run.drops, run.rounds,
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
            result = _follow(auditor_member, study.number, run, nodes, names, scored, progress)
        finally:
            nodes.stop()
        verdicts = {verdict.round: verdict for verdict in verify_study(auditor_member, study.number)}
        metrics = _published_metrics(auditor_member, study.number, names, echo)
        result.rounds = [RoundResult(**{**asdict(entry), "verified": verdicts[entry.round].verified,
                                        "metrics": metrics.get(entry.round)})
                         for entry in result.rounds]
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


def _secure_options(run: RunSettings) -> dict:
    """The study config's secure aggregation, as the run asks for it."""
    if not run.secure:
        return {}
    from offchain.rounds.config import SecureAggregationSettings

    timing = {} if run.phase_seconds is None else {"phase_seconds": run.phase_seconds}
    return {"secure_aggregation": SecureAggregationSettings(run.secure_threshold, **timing)}


def _update_options(run: RunSettings) -> dict:
    """The study config's aggregator settings and update compression, as the run asks for them."""
    return {"aggregator_params": dict(run.aggregator_params), "compression": run.compression}


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
    from ape.logging import LogLevel, logger

    with logger.at_level(LogLevel.WARNING):  # the run reports what it made in its own lines
        access = admin.deploy(project.MedicalAccess, admin)
        registry = admin.deploy(project.RoundRegistry, access)
    return access, registry


def ensure_published_key(access: AccessClient, settings: Settings, passphrase: str) -> Keystore:
    """The account's keystore (created on first use) with its current key published."""
    path = settings.keystore_path(access.address)
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
          passphrase: str, *, homes: dict[str, Settings] | None = None) -> dict[str, Member]:
    """Make the accounts a consortium's study members: funded, given their roles, keys published.

    ``coordinator`` gets COORDINATOR, ``hospitals`` PARTICIPANT, ``others``
    (auditors) RESEARCHER unless they hold a role already (publishing a key
    takes membership); each gets a keystore in ``settings.home`` (or in its
    own home, ``homes[address]``, with its own store) and its key published.
    Returns each account's :class:`Member`, by address.
    """
    everyone = [coordinator, *hospitals, *others]
    _fund(admin, everyone)
    _grant(access_contract, admin, Role.COORDINATOR, [coordinator])
    _grant(access_contract, admin, Role.PARTICIPANT, hospitals)
    _grant(access_contract, admin, Role.RESEARCHER, [a for a in others if not int(access_contract.rolesOf(a.address))])
    shared = open_store(settings) if not homes else None
    members = {}
    for account in everyone:
        own = (homes or {}).get(account.address, settings)
        access = AccessClient(access_contract, account)
        keystore = ensure_published_key(access, own, passphrase)
        store = shared or open_store(own)
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


class _Nodes:
    """The run's node processes by name, each logging to ``logs/<name>.log``; a hospital told to go
    silent (:class:`Dropout`) is killed once it says it holds, and started again later."""

    def __init__(self, logs: Path, env: dict, drops: tuple[Dropout, ...], rounds: int,
                 site_env: dict[str, dict[str, str]] | None = None) -> None:
        self.logs = logs
        self.env = env
        self.site_env = site_env or {}  # by node name: its own home and IPFS node (separate sites)
        self.drops = sorted(drops, key=lambda drop: drop.round)
        self.rounds = rounds
        self.processes: dict[str, subprocess.Popen | NodeProcess] = {}
        self.arguments: dict[str, list[str]] = {}
        self.silenced: dict[str, Dropout] = {}  # told to go silent, not yet killed
        self.killed: dict[str, int] = {}  # killed, by name: the round they went silent in
        self.server: NodeServer | None = None
        logs.mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, arguments: list[str], after_round: int = 0) -> None:
        """Start node ``name``; a hospital with a drop in a round after ``after_round`` holds in the first."""
        silent = next((d for d in self.drops if d.name == name and d.round > after_round), None)
        env = {**self.env, **self.site_env.get(name, {})}
        if silent is not None:
            env[SILENT_AFTER_ENV] = f"{silent.after.value}@{silent.round}"
        command = [sys.executable, "-c", "from offchain.cli import main; main()", "fl", *arguments]
        mode = "ab" if name in self.arguments else "wb"  # a restarted node's log goes on from its last
        if self.server is None and preloads_safely(self.env):
            self.server = NodeServer(self.env)
        if self.server is not None:  # forked from the preloaded server: the same command, imports paid once
            self.processes[name] = self.server.start(["fl", *arguments], env, self.log(name), mode)
        else:
            with self.log(name).open(mode) as out:
                self.processes[name] = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                        stdin=subprocess.DEVNULL)
        self.arguments[name] = arguments
        if silent is not None:
            self.silenced[name] = silent

    def kill_the_silent(self, echo: Echo) -> None:
        """SIGKILL each node that went silent (it said so in its log): a crash, nothing flushed or closed."""
        for name, drop in list(self.silenced.items()):
            if SILENT_MARK in self.log(name).read_text(errors="replace"):
                os.kill(self.processes[name].pid, signal.SIGKILL)
                self.processes[name].wait()
                del self.silenced[name]
                self.killed[name] = drop.round
                echo(f"{name}: killed in round {drop.round}, after its {drop.after.value}")

    def restart_killed(self, closed_round: int, echo: Echo) -> None:
        """Start again each node killed in a round now closed (unless the study is over)."""
        for name, round_number in list(self.killed.items()):
            if round_number <= closed_round < self.rounds:
                del self.killed[name]
                self.start(name, self.arguments[name], after_round=closed_round)
                echo(f"{name}: started again after round {closed_round}")

    def check(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code not in (None, 0) and name not in self.killed:
                raise RoundsError(f"{name} exited with status {code}: {_last_line(self.log(name))}")

    def wait(self) -> None:
        for name, process in self.processes.items():
            if name in self.killed:
                continue
            code = process.wait(timeout=NODE_TIMEOUT_SECONDS)
            if code != 0:
                raise RoundsError(f"{name} exited with status {code}: {_last_line(self.log(name))}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
        if self.server is not None:
            self.server.close()


def _follow(auditor: Member, study: int, run: RunSettings, nodes: _Nodes, names: dict, test,
            progress: bool) -> RunResult:
    """Wait for the nodes, scoring each committed round as it lands; silence and kill the dropped."""
    import click

    from offchain.rounds.study import Study

    view = Study(auditor, study)
    result = RunResult(study, "", "")
    closed = 0
    echo = click.echo if progress else (lambda line: None)
    deadline = time.monotonic() + NODE_TIMEOUT_SECONDS
    from offchain.cli.terminal import progress_file

    with click.progressbar(length=run.rounds, label="rounds", file=progress_file(progress)) as bar:
        while closed < run.rounds:
            nodes.kill_the_silent(echo)
            nodes.check()
            view.refresh()
            for number in range(closed + 1, view.info.round_count + 1):
                info = auditor.rounds.round(study, number)
                if info.state == "open":
                    break
                if info.state == "committed":
                    result.rounds.append(_score(view, number, info, names, test))
                closed = number
                bar.update(1)
                nodes.restart_killed(closed, echo)
            if time.monotonic() > deadline:
                raise RoundsError(f"the study did not finish in {NODE_TIMEOUT_SECONDS} s; see the logs in {nodes.logs}")
            time.sleep(0.2)
    nodes.wait()
    return result


def _score(view, number: int, info, names: dict, test) -> RoundResult:
    from offchain.rounds.aggregate import committed_base_round
    from offchain.rounds.report import round_accuracy
    from offchain.rounds.status import secure_parties

    accuracy = None if test is None else round_accuracy(view, number, test)
    base = view.model_ref(committed_base_round(view, number))
    parties = secure_parties(view, info)

    def named(accounts: list[str]) -> list[str]:
        return [names.get(account, account) for account in accounts]

    return RoundResult(number, str(base.cid), str(info.aggregate.cid), named(info.counted_submitters), accuracy,
                       False, *((named(parties.survivors), named(parties.dropped)) if parties else ()))


def _published_metrics(auditor: Member, study: int, names: dict, echo: Echo) -> dict[int, dict]:
    """The hospitals' published metrics by round, as JSON naming the hospitals; a warning for each
    document left out."""
    from offchain.rounds.evaluation import published_metrics
    from offchain.rounds.study import Study

    view = Study(auditor, study)
    if view.secure:
        return {}
    published = published_metrics(view)
    for warning in published.warnings:
        echo(f"warning: {warning}")
    return {number: metrics.to_json(names) for number, metrics in published.rounds.items()}


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def plot_accuracy(result: RunResult, path: Path) -> Path:
    """A PNG of test accuracy by round."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4))
    scored = [entry for entry in result.rounds if entry.test_accuracy is not None]
    axes.plot([entry.round for entry in scored], [entry.test_accuracy for entry in scored], marker="o",
              label="test accuracy (held-out split)")
    _plot_published_auroc(axes, result)
    axes.set_xlabel("round")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("score")
    axes.set_title(f"study {result.study}: committed models by round")
    axes.set_ylim(0, 1)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    pyplot.close(figure)
    return path


def _plot_published_auroc(axes, result: RunResult) -> None:
    """The AUROC the hospitals published on their validation splits: weighted, and each hospital's."""
    scored = [entry for entry in result.rounds if entry.metrics is not None]
    weighted = [(entry.round, (entry.metrics["weighted"] or {}).get("auroc")) for entry in scored]
    weighted = [(number, value) for number, value in weighted if value is not None]
    if weighted:
        axes.plot(*zip(*weighted), marker="s", linewidth=2, label="AUROC, weighted (validation splits)")
    hospitals = sorted({name for entry in scored for name in entry.metrics["hospitals"]})
    for name in hospitals:
        points = [(entry.round, entry.metrics["hospitals"][name].get("auroc")) for entry in scored
                  if name in entry.metrics["hospitals"]]
        points = [(number, value) for number, value in points if value is not None]
        if points:
            axes.plot(*zip(*points), linestyle=":", alpha=0.6, label=f"AUROC, {name}")
