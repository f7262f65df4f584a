"""The round registry seen from Python: studies, rounds, updates and aggregates as committed artifacts.

:class:`RoundsClient` wraps a deployed RoundRegistry and the account that
signs. The chain keeps each artifact's commitment (the keccak of its CID and
SHA-256); the CIDs and digests themselves come back from the registry's
events, and each is checked against its commitment before it is handed out.
A refusal surfaces as :class:`~offchain.contract_client.ChainRefusal` carrying
the contract's custom error.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import keccak

from offchain.contract_client import ContractClient
from offchain.ipfs.cid import CID


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


class RoundsClient(ContractClient):
    """A RoundRegistry contract and the account that signs for this client."""

    # Reads -----------------------------------------------------------------

    def studies(self) -> list[int]:
        """Every study's id, oldest first."""
        (count,) = self._call("studyCount")
        return list(range(1, int(count) + 1))

    def study(self, study: int) -> StudyInfo:
        """The study now; ChainRefusal(UnknownStudy) if there is none."""
        coordinator, min_updates, round_count, latest_round, genesis_commitment, config_digest = self._call(
            "studyOf", study
        )
        created = self._one_log("StudyCreated", study=study)
        genesis = self._checked(ArtifactRef(CID.from_bytes(created.genesisCid), bytes(created.genesisSha256)),
                                bytes(genesis_commitment))
        _, latest_commitment = self._call("latestModel", study)
        return StudyInfo(
            study, coordinator, genesis, bytes(config_digest), CID.from_bytes(bytes(created.configCid)),
            int(min_updates), int(round_count), int(latest_round), bytes(latest_commitment),
        )

    def round(self, study: int, round: int) -> RoundInfo:
        """The round now; ChainRefusal(UnknownStudy or UnknownRound) if there is none."""
        status, deadline, base_round, base_commitment, _, update_count, _, aggregate_commitment = self._call(
            "roundOf", study, round
        )
        opened = self._one_log("RoundOpened", study=study, round=round)
        state = _STATES[int(status)]
        aggregate = None
        counted: tuple[str, ...] = ()
        rejected: tuple[str, ...] = ()
        closed_block = None
        if state is not RoundState.OPEN:
            event = "RoundCommitted" if state is RoundState.COMMITTED else "RoundCancelled"
            closed = self._one_log(event, study=study, round=round)
            closed_block = int(closed.block_number)
            submitters = self.submitters(study, round)
            rejected = _members(submitters, int(closed.rejectedMask))
            if state is RoundState.COMMITTED:
                aggregate = self._checked(ArtifactRef(CID.from_bytes(closed.cid), bytes(closed.sha256)),
                                          bytes(aggregate_commitment))
                counted = _members(submitters, int(closed.countedMask))
        return RoundInfo(
            study, round, state, int(base_round), bytes(base_commitment), int(deadline), tuple(opened.invited),
            int(update_count), aggregate, counted, rejected, closed_block,
        )

    def updates(self, study: int, round: int) -> list[UpdateInfo]:
        """The round's updates in submission order."""
        return [
            UpdateInfo(log.participant, int(log.index), ArtifactRef(CID.from_bytes(log.cid), bytes(log.sha256)),
                       int(log.samples))
            for log in self._logs("UpdateSubmitted", study=study, round=round)
        ]

    def submitters(self, study: int, round: int) -> list[str]:
        """The round's submitters in submission order (what commit and cancel list)."""
        return [update.participant for update in self.updates(study, round)]

    def update_of(self, study: int, round: int, participant: str) -> bytes | None:
        """The commitment of ``participant``'s update to the round; None if it submitted none."""
        (commitment,) = self._call("updateOf", study, round, participant)
        return bytes(commitment) if any(commitment) else None

    def is_invited(self, study: int, round: int, account: str) -> bool:
        """Whether the round lets ``account`` submit by invitation (True when it invites anyone)."""
        (invited,) = self._call("isInvited", study, round, account)
        return bool(invited)

    def latest_model(self, study: int) -> tuple[int, ArtifactRef]:
        """The study's latest model: the last committed round (0: genesis) and its artifact."""
        round, commitment = self._call("latestModel", study)
        if round == 0:
            created = self._one_log("StudyCreated", study=study)
            artifact = ArtifactRef(CID.from_bytes(created.genesisCid), bytes(created.genesisSha256))
        else:
            committed = self._one_log("RoundCommitted", study=study, round=round)
            artifact = ArtifactRef(CID.from_bytes(committed.cid), bytes(committed.sha256))
        return int(round), self._checked(artifact, bytes(commitment))

    # Transactions ----------------------------------------------------------

    def create_study(self, genesis: ArtifactRef, config_digest: bytes, config_cid: CID, min_updates: int) -> int:
        """Create a study coordinated by the signer, starting from ``genesis``; returns its id."""
        receipt = self._send(
            self.contract.createStudy, bytes(genesis.cid), genesis.sha256, config_digest, bytes(config_cid),
            min_updates,
        )
        return int(self._event_args(receipt, "StudyCreated")["study"])

    def open_round(self, study: int, base: ArtifactRef, deadline: int, invited: Sequence[str] = ()) -> int:
        """Open the study's next round on ``base`` (its latest model) until ``deadline``; returns its number."""
        receipt = self._send(self.contract.openRound, study, base.commitment(), deadline, list(invited))
        return int(self._event_args(receipt, "RoundOpened")["round"])

    def submit_update(self, study: int, round: int, update: ArtifactRef, samples: int) -> None:
        """Submit the signer's update (trained on ``samples`` samples) to the round."""
        self._send(self.contract.submitUpdate, study, round, bytes(update.cid), update.sha256, samples)

    def commit_aggregate(self, study: int, round: int, submitters: Sequence[str], aggregate: ArtifactRef,
                         rejected: Sequence[str] = ()) -> None:
        """Commit the round's aggregate; ``submitters`` are all the round's submitters in order,
        ``rejected`` those whose updates the coordinator refused as malformed (not counted)."""
        self._send(self.contract.commitAggregate, *self._commit_args(study, round, submitters, aggregate, rejected))

    def commit_and_open(self, study: int, round: int, submitters: Sequence[str], aggregate: ArtifactRef,
                        deadline: int, invited: Sequence[str] = (), rejected: Sequence[str] = ()) -> int:
        """Commit the round's aggregate and open the next round on it, in one transaction; returns
        the new round's number."""
        receipt = self._multicall([
            self.contract.commitAggregate.encode_input(
                *self._commit_args(study, round, submitters, aggregate, rejected)),
            self.contract.openRound.encode_input(study, aggregate.commitment(), deadline, list(invited)),
        ])
        return int(self._event_args(receipt, "RoundOpened")["round"])

    def cancel_round(self, study: int, round: int, rejected: Sequence[str] = (),
                     submitters: Sequence[str] | None = None) -> None:
        """Cancel a round that missed its quorum by its deadline, not counting the ``rejected`` updates."""
        submitters = self.submitters(study, round) if submitters is None else list(submitters)
        self._send(self.contract.cancelRound, study, round, submitters, rejected_mask(submitters, rejected))

    # Helpers ---------------------------------------------------------------

    @staticmethod
    def _commit_args(study: int, round: int, submitters: Sequence[str], aggregate: ArtifactRef,
                     rejected: Sequence[str]) -> tuple:
        return (study, round, list(submitters), rejected_mask(submitters, rejected), bytes(aggregate.cid),
                aggregate.sha256)

    def _one_log(self, event: str, **topics: int):
        logs = self._logs(event, **topics)
        if not logs:
            shown = ", ".join(f"{name} {value}" for name, value in topics.items())
            raise MissingEvent(f"no {event} event for {shown} since block {self.from_block}")
        return logs[-1]

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
