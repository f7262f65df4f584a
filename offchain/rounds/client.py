"""The round registry seen from Python: studies, rounds, updates and aggregates as committed artifacts.

:class:`RoundsClient` wraps a deployed RoundRegistry and the account that
signs. The chain keeps each artifact's commitment (the keccak of its CID and
SHA-256); the CIDs and digests themselves come back from the registry's
events, and each is checked against its commitment before it is handed out.
A refusal surfaces as :class:`~offchain.chain.contract.ChainRefusal` carrying
the contract's custom error.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from offchain.chain.contract import ContractClient
from offchain.ipfs.cid import CID, DAG_PB, RAW, InvalidCID


class MissingEvent(LookupError):
    """An event the registry's state implies is not in the logs searched (``from_block`` too late?)."""


@dataclass(frozen=True)
class ArtifactRef:
    """A model, update or aggregate: its CID in the store and the SHA-256 of its bytes."""

    cid: CID
    sha256: bytes

    def __post_init__(self) -> None:
        if len(self.sha256) != 32:
            raise ValueError(f"a SHA-256 digest is 32 bytes, not {len(self.sha256)}")

    def commitment(self) -> bytes:
        """What the registry stores for this artifact: ``keccak256(abi.encode(cid, sha256))``."""
        return keccak(abi_encode(["bytes", "bytes32"], [bytes(self.cid), self.sha256]))


class RoundState(enum.StrEnum):
    """A round's status (RoundRegistry.RoundStatus 1, 2, 3)."""

    OPEN = "open"
    COMMITTED = "committed"
    CANCELLED = "cancelled"


_STATES = {1: RoundState.OPEN, 2: RoundState.COMMITTED, 3: RoundState.CANCELLED}


class SecurePhase(enum.IntEnum):
    """A secure round's phase (RoundRegistry.SecurePhase): the postings it takes; FINISHED: all closed."""

    KEYS = 0
    SHARES = 1
    MASKED_INPUTS = 2
    UNMASKING = 3
    FINISHED = 4


@dataclass(frozen=True)
class SecureMessage:
    """One posting of a secure round (its SecureMessagePosted event): key advertisement, shares or
    unmasking response, its bytes in the store."""

    sender: str
    phase: SecurePhase
    artifact: ArtifactRef | None  # None: its CID does not parse (anyone may post any bytes: silence, not an error)
    block: int
    index: int  # its place among the round's postings of every phase, from 0


@dataclass(frozen=True)
class EvaluationPosting:
    """A hospital's evaluation of a committed model (its first EvaluationReported event of the round),
    its bytes in the store."""

    hospital: str
    artifact: ArtifactRef | None  # None: its CID does not parse (read as no evaluation)


@dataclass(frozen=True)
class StudyTerms:
    """What a study is created with, fixed for its life (RoundRegistry.StudyTerms, ``createStudy``'s
    last argument): all in the one creating transaction, so none can land on another study."""

    min_updates: int  # the quorum
    max_samples: int  # the most samples one update may declare (its weight in an aggregate)
    secure_aggregation: bool = False
    graph_degree: int = 0  # SecAgg+ neighbours of each hospital; 0: the complete graph
    budget_hospitals: tuple[str, ...] = ()  # the hospitals given a privacy budget; empty: no budgets
    epsilon_units: int = 0  # each one's epsilon for the study, in 1/EPSILON_SCALE (0 without hospitals)
    delta_units: int = 0  # its delta, in 1/DELTA_SCALE (0 without hospitals)

    def encoded(self) -> tuple:
        """The tuple ``createStudy`` takes."""
        return (self.min_updates, self.max_samples, self.secure_aggregation, self.graph_degree,
                list(self.budget_hospitals), self.epsilon_units, self.delta_units)


@dataclass(frozen=True)
class StudyInfo:
    """A study as the chain holds it: who runs it, what it starts from, how far it got."""

    study: int
    coordinator: str
    genesis: ArtifactRef
    config_digest: bytes
    config_cid: CID
    min_updates: int
    round_count: int
    latest_round: int  # the last committed round; 0: none, the genesis model is the latest
    latest_commitment: bytes
    secure: bool = False  # its rounds run secure aggregation


@dataclass(frozen=True)
class UpdateInfo:
    """One submitted update, as its event recorded it."""

    participant: str
    index: int  # its place in submission order, from 0
    artifact: ArtifactRef
    samples: int


@dataclass(frozen=True)
class RoundInfo:
    """A round: its status, base, deadline, who may submit, what was submitted and committed."""

    study: int
    round: int
    state: RoundState
    base_round: int  # 0: the genesis model
    base_commitment: bytes
    deadline: int
    invited: tuple[str, ...]  # empty: any participant
    update_count: int
    aggregate: ArtifactRef | None  # set once committed
    counted_submitters: tuple[str, ...]  # the submitters whose updates counted at commit
    rejected_submitters: tuple[str, ...] = ()  # those whose updates the coordinator refused (commit or cancel)
    closed_block: int | None = None  # the block of the commit or cancel
    secure_phase: SecurePhase | None = None  # a secure round's phase; None: the study has no secure aggregation
    opened_block: int | None = None  # the block of its RoundOpened event


@dataclass(frozen=True)
class ParticipantView:
    """A round as one participant sees it (:meth:`RoundsClient.round_for`)."""

    study: int
    round: int
    state: RoundState
    deadline: int
    base_round: int
    base_commitment: bytes
    invited: bool  # True also when the round invites anyone
    submitted: bool
    secure_phase: SecurePhase | None = None  # as in RoundInfo


def _one_read(method):
    """A read of several events: the event store is brought up to date once, not once per event."""
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        with self.one_read():
            return method(self, *args, **kwargs)
    return read


class RoundsClient(ContractClient):
    """A RoundRegistry contract and the account that signs for this client."""

    # Reads -----------------------------------------------------------------

    def studies(self) -> list[int]:
        """Every study's id, oldest first."""
        (count,) = self._call("studyCount")
        return list(range(1, int(count) + 1))

    @_one_read
    def study(self, study: int) -> StudyInfo:
        """The study now; ChainRefusal(UnknownStudy) if there is none."""
        (coordinator, min_updates, round_count, latest_round, genesis_commitment, config_digest), \
            (_, latest_commitment), (secure, _) = self._batch(
                ("studyOf", study), ("latestModel", study), ("secureRoundOf", study, 0))
        created = self._one_log("StudyCreated", lambda log: _artifact(log, "genesis").commitment()
                                == bytes(genesis_commitment), study=study)
        genesis = self._checked(_artifact(created, "genesis"), bytes(genesis_commitment))
        return StudyInfo(
            study, coordinator, genesis, bytes(config_digest), CID.from_bytes(bytes(created.configCid)),
            int(min_updates), int(round_count), int(latest_round), bytes(latest_commitment), bool(secure),
        )

    @_one_read
    def round(self, study: int, round: int) -> RoundInfo:
        """The round now; ChainRefusal(UnknownStudy or UnknownRound) if there is none."""
        (status, deadline, base_round, base_commitment, _, update_count, _, aggregate_commitment), \
            (secure, phase) = self._batch(("roundOf", study, round), ("secureRoundOf", study, round))
        opened = self._one_log("RoundOpened", lambda log: int(log.deadline) == int(deadline)
                               and bytes(log.baseCommitment) == bytes(base_commitment), study=study, round=round)
        state = _STATES[int(status)]
        aggregate = None
        counted: tuple[str, ...] = ()
        rejected: tuple[str, ...] = ()
        closed_block = None
        if state is not RoundState.OPEN:
            event = "RoundCommitted" if state is RoundState.COMMITTED else "RoundCancelled"
            closed = self._one_log(event, lambda log: state is RoundState.CANCELLED
                                   or _artifact(log).commitment() == bytes(aggregate_commitment),
                                   study=study, round=round)
            closed_block = int(closed.block_number)
            final = self.__dict__.setdefault("_final_updates", {})
            if (study, round) not in final:
                # A closed round takes no more updates: its list is read once (and dropped with the
                # study's kept events when its opening no longer matches the chain).
                updates = self.updates(study, round)
                if len(updates) != int(update_count):
                    raise MissingEvent(f"study {study} round {round}: {len(updates)} UpdateSubmitted events "
                                       f"since block {self.from_block}, the chain counts {update_count}")
                final[study, round] = tuple(updates)
            submitters = [update.participant for update in final[study, round]]
            rejected = _members(submitters, int(closed.rejectedMask))
            if state is RoundState.COMMITTED:
                aggregate = self._checked(_artifact(closed), bytes(aggregate_commitment))
                counted = _members(submitters, int(closed.countedMask))
        return RoundInfo(
            study, round, state, int(base_round), bytes(base_commitment), int(deadline), tuple(opened.invited),
            int(update_count), aggregate, counted, rejected, closed_block,
            SecurePhase(int(phase)) if secure else None, int(opened.block_number),
        )

    def updates(self, study: int, round: int) -> list[UpdateInfo]:
        """The round's updates in submission order."""
        return [
            UpdateInfo(log.participant, int(log.index), logged_artifact(log), int(log.samples))
            for log in self.logs("UpdateSubmitted", study=study, round=round)
        ]

    def submitters(self, study: int, round: int) -> list[str]:
        """The round's submitters in submission order (what commit and cancel list)."""
        return [update.participant for update in self.updates(study, round)]

    def round_for(self, study: int, round: int, participant: str) -> ParticipantView:
        """What a hospital node needs of a round, in one call: its state, deadline, base, and whether
        ``participant`` is invited and has submitted."""
        (status, deadline, base_round, base_commitment, *_), (invited,), (submitted,), (secure, phase) = \
            self._batch(("roundOf", study, round), ("isInvited", study, round, participant),
                        ("hasSubmitted", study, round, participant), ("secureRoundOf", study, round))
        return ParticipantView(study, round, _STATES[int(status)], int(deadline), int(base_round),
                               bytes(base_commitment), bool(invited), bool(submitted),
                               SecurePhase(int(phase)) if secure else None)

    def secure_messages(self, study: int, round: int, phase: SecurePhase) -> list[SecureMessage]:
        """Every posting of the secure round's ``phase`` (Keys, Shares or Unmasking), in chain order.
        A sender may appear twice: its first posting is the one that counts."""
        return [
            SecureMessage(log.sender, SecurePhase(int(log.phase)), _posted_artifact(log), int(log.block_number), index)
            for index, log in enumerate(self.logs("SecureMessagePosted", study=study, round=round))
            if int(log.phase) == phase
        ]

    def evaluations(self, study: int, round: int) -> list[EvaluationPosting]:
        """The evaluations of the model ``round`` committed posted by its submitters, each hospital's
        first only, in chain order."""
        first: dict[str, EvaluationPosting] = {}
        for log in self.logs("EvaluationReported", study=study, round=round):
            first.setdefault(log.hospital, EvaluationPosting(log.hospital, _posted_artifact(log)))
        return list(first.values())

    @_one_read
    def committed_aggregate(self, study: int, round: int, commitment: bytes) -> ArtifactRef:
        """The aggregate a round committed, whose commitment the caller read from the chain (e.g. the
        next round's base commitment); MissingEvent if its event names another."""
        committed = self._one_log("RoundCommitted", lambda log: _artifact(log).commitment() == commitment,
                                  study=study, round=round)
        return self._checked(_artifact(committed), commitment)

    @_one_read
    def latest_model(self, study: int) -> tuple[int, ArtifactRef]:
        """The study's latest model: the last committed round (0: genesis) and its artifact."""
        round, commitment = self._call("latestModel", study)
        commitment = bytes(commitment)
        if round == 0:
            created = self._one_log("StudyCreated", lambda log: _artifact(log, "genesis").commitment() == commitment,
                                    study=study)
            artifact = _artifact(created, "genesis")
        else:
            committed = self._one_log("RoundCommitted", lambda log: _artifact(log).commitment() == commitment,
                                      study=study, round=round)
            artifact = _artifact(committed)
        return int(round), self._checked(artifact, commitment)

    def wait_for_block(self, seen: int | None, *, timeout: float, poll: float = 0.02) -> int:
        """The head block number once it is past ``seen`` or ``timeout`` seconds have passed (what a
        node waits for between steps: the chain's state changes only with a block)."""
        web3 = self.contract.provider.web3
        give_up = time.monotonic() + timeout
        while True:
            head = int(web3.eth.block_number)
            if seen is None or head > seen or time.monotonic() >= give_up:
                return head
            time.sleep(poll)

    # Transactions ----------------------------------------------------------

    def create_study(self, genesis: ArtifactRef, config_digest: bytes, config_cid: CID, terms: StudyTerms) -> int:
        """Create a study coordinated by the signer, starting from ``genesis``, on ``terms`` (its
        quorum, sample cap, secure aggregation and privacy budgets, in the same transaction); returns
        its id, as the chain numbered it."""
        receipt = self._send(self.contract.createStudy, bytes(genesis.cid), genesis.sha256, config_digest,
                             bytes(config_cid), terms.encoded())
        return int(self._event_args(receipt, "StudyCreated")["study"])

    def privacy_of(self, study: int, account: str) -> tuple[int, int, int]:
        """``account``'s privacy budget in the study as the registry holds it: its epsilon and delta
        (0, 0: it has none) and the epsilon spent so far, in the registry's fixed-point units."""
        epsilon, delta, spent = self._call("privacyOf", study, account)
        return int(epsilon), int(delta), int(spent)

    def study_terms(self, study: int) -> tuple[int, bool, bool, int]:
        """The study's sample cap, whether it has privacy budgets, whether it runs secure aggregation,
        and its SecAgg+ graph degree (0: the complete graph)."""
        max_samples, budgeted, secure, degree = self._call("studyTermsOf", study)
        return int(max_samples), bool(budgeted), bool(secure), int(degree)

    def post_secure_message(self, study: int, round: int, phase: SecurePhase, message: ArtifactRef) -> None:
        """Post the signer's message of the secure round's current ``phase`` (its bytes already stored)."""
        self._send(self.contract.postSecureMessage, study, round, int(phase), bytes(message.cid), message.sha256)

    def report_evaluation(self, study: int, round: int, evaluation: ArtifactRef) -> None:
        """Post the signer's evaluation of the model ``round`` committed (its bytes already stored)."""
        self._send(self.contract.reportEvaluation, study, round, bytes(evaluation.cid), evaluation.sha256)

    def close_secure_phase(self, study: int, round: int, phase: SecurePhase) -> None:
        """Close the secure round's current ``phase`` (the study's coordinator)."""
        self._send(self.contract.closeSecurePhase, study, round, int(phase))

    def open_round(self, study: int, base: ArtifactRef, deadline: int, invited: Sequence[str] = ()) -> int:
        """Open the study's next round on ``base`` (its latest model) until ``deadline``; returns its number."""
        receipt = self._send(self.contract.openRound, study, base.commitment(), deadline, list(invited))
        return self._opened(receipt)

    def submit_update(self, study: int, round: int, update: ArtifactRef, samples: int) -> None:
        """Submit the signer's update (trained on ``samples`` samples) to the round."""
        self._send(self.contract.submitUpdate, study, round, bytes(update.cid), update.sha256, samples)

    def submit_private_update(self, study: int, round: int, update: ArtifactRef, declaration: int) -> None:
        """Submit the signer's update to a budgeted study's round with its packed DP ``declaration``
        and no sample count (the registry takes none from a private update)."""
        self._send(self.contract.submitPrivateUpdate, study, round, bytes(update.cid), update.sha256, 0, declaration)

    def commit_aggregate(self, study: int, round: int, submitters: Sequence[str], aggregate: ArtifactRef,
                         rejected: Sequence[str] = ()) -> None:
        """Commit the round's aggregate; ``submitters`` are all the round's submitters in order,
        ``rejected`` those whose updates the coordinator refused as malformed (not counted)."""
        self._send(self.contract.commitAggregate, *self._commit_args(study, round, submitters, aggregate, rejected))

    def commit_and_open(self, study: int, round: int, submitters: Sequence[str], aggregate: ArtifactRef,
                        deadline: int, invited: Sequence[str] = (), rejected: Sequence[str] = ()) -> int:
        """Commit the round's aggregate and open the next round on it, in one transaction; returns
        the new round's number."""
        receipt = self.multicall([
            self.contract.commitAggregate.encode_input(
                *self._commit_args(study, round, submitters, aggregate, rejected)),
            self.contract.openRound.encode_input(study, aggregate.commitment(), deadline, list(invited)),
        ])
        return self._opened(receipt)

    def cancel_round(self, study: int, round: int, rejected: Sequence[str] = (),
                     submitters: Sequence[str] | None = None) -> None:
        """Cancel a round that missed its quorum by its deadline (or cannot be committed), not counting
        the ``rejected`` updates; anyone may cancel once the deadline is RoundRegistry.CANCEL_GRACE_PERIOD
        past (then with no ``rejected``)."""
        submitters = self.submitters(study, round) if submitters is None else list(submitters)
        self._send(self.contract.cancelRound, study, round, submitters, rejected_mask(submitters, rejected))

    # Helpers ---------------------------------------------------------------

    @staticmethod
    def _commit_args(study: int, round: int, submitters: Sequence[str], aggregate: ArtifactRef,
                     rejected: Sequence[str]) -> tuple:
        return (study, round, list(submitters), rejected_mask(submitters, rejected), bytes(aggregate.cid),
                aggregate.sha256)

    def _opened(self, receipt) -> int:
        """The round a receipt opened; its RoundOpened event is kept as if read from the logs."""
        fields = self._event_args(receipt, "RoundOpened")
        fields["invited"] = [to_checksum_address(account) for account in fields["invited"]]
        log = SimpleNamespace(**fields, block_number=int(receipt["blockNumber"]))
        self.__dict__.setdefault("_once", {})[
            ("RoundOpened", (("round", int(fields["round"])), ("study", int(fields["study"]))))] = log
        return int(fields["round"])

    def _one_log(self, event: str, matches: Callable[[Any], bool] | None = None, **topics: int):
        """The event a study or round emits once (creation, opening, commit, cancel).

        Kept once seen, so each is read once. What the chain's state says of it (``matches``: the
        commitment, deadline or base it must carry) is checked on every use; a kept event that fails
        (the chain was rolled back or reorganised since, and the number reused) drops what is kept
        for its study and is read again.
        """
        key = (event, tuple(sorted(topics.items())))
        cache = self.__dict__.setdefault("_once", {})
        log = cache.get(key)
        if log is not None and matches is not None and not matches(log):
            self._forget(topics["study"])
            log = None
        if log is None:
            logs = self.logs(event, **topics)
            if not logs:
                # The state that names this event can be newer than the store (inside one_read it was
                # brought up to the head once, before that state was read): once more to the head.
                self.events.sync(self.contract.provider.web3)
                logs = self.events.query(event, **topics)
            if not logs:
                shown = ", ".join(f"{name} {value}" for name, value in topics.items())
                raise MissingEvent(f"no {event} event for {shown} since block {self.from_block}")
            log = cache[key] = logs[-1]
        return log

    def _forget(self, study: int) -> None:
        once = self.__dict__.setdefault("_once", {})
        for key in [key for key in once if ("study", study) in key[1]]:
            del once[key]
        final = self.__dict__.setdefault("_final_updates", {})
        for key in [key for key in final if key[0] == study]:
            del final[key]

    def _batch(self, *calls: tuple) -> list[tuple]:
        """Several views in one ``eth_call`` (the registry's multicall): each ``(name, *args)``."""
        methods = [getattr(self.contract, name) for name, *_ in calls]
        data = [method.encode_input(*args) for method, (_, *args) in zip(methods, calls)]
        (results,) = self._call("multicall", data)
        decoded = []
        for method, result in zip(methods, results):
            outputs = method.abis[0].outputs
            values = abi_decode([output.canonical_type for output in outputs], bytes(result))
            decoded.append(tuple(to_checksum_address(value) if output.type == "address" else value
                                 for output, value in zip(outputs, values)))
        return decoded

    @staticmethod
    def _checked(artifact: ArtifactRef, commitment: bytes) -> ArtifactRef:
        if artifact.commitment() != commitment:
            raise MissingEvent(f"the logged artifact {artifact.cid} does not match the chain's commitment")
        return artifact


def rejected_mask(submitters: Sequence[str], rejected: Sequence[str]) -> int:
    """The registry's mask of ``rejected`` among ``submitters`` (bit i: the i-th submitter)."""
    position = {account.lower(): i for i, account in enumerate(submitters)}
    mask = 0
    for account in rejected:
        if account.lower() not in position:
            raise ValueError(f"{account} submitted no update to the round: it cannot be rejected")
        mask |= 1 << position[account.lower()]
    return mask


def _members(submitters: Sequence[str], mask: int) -> tuple[str, ...]:
    return tuple(account for i, account in enumerate(submitters) if mask >> i & 1)


def _posted_artifact(log) -> ArtifactRef | None:
    """A posting's artifact (secure message or evaluation), or None when it names no CID (readers filter
    senders first; the registry refuses a malformed CID, so this is a reader's second line)."""
    try:
        return logged_artifact(log)
    except (InvalidCID, ValueError):
        return None


#: RoundRegistry's CID formats (Cid.sol: V0, V1_RAW, V1_DAG_PB) as (version, codec).
_CID_FORMATS = {1: (0, DAG_PB), 2: (1, RAW), 3: (1, DAG_PB)}


def logged_artifact(log) -> ArtifactRef:
    """The artifact of an event that logs its CID as parsed parts (``cidFormat``, ``cidDigest``) beside
    its ``sha256`` (UpdateSubmitted, SecureMessagePosted, EvaluationReported); InvalidCID for an unknown
    format."""
    if int(log.cidFormat) not in _CID_FORMATS:
        raise InvalidCID(f"unknown CID format {int(log.cidFormat)} in a logged artifact")
    version, codec = _CID_FORMATS[int(log.cidFormat)]
    return ArtifactRef(CID.from_digest(version, codec, bytes(log.cidDigest)), bytes(log.sha256))


def _artifact(log, prefix: str = "") -> ArtifactRef:
    """The artifact an event names (``cid``/``sha256``, or ``genesisCid``/``genesisSha256``)."""
    if prefix:
        return ArtifactRef(CID.from_bytes(bytes(getattr(log, f"{prefix}Cid"))), bytes(getattr(log, f"{prefix}Sha256")))
    return ArtifactRef(CID.from_bytes(bytes(log.cid)), bytes(log.sha256))
