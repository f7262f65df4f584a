"""The verifier: re-derive every committed aggregate from chain data, the store and an auditor's key.

For each round it runs these checks in order and reports the first that fails:

``config``    the study's config in the store hashes to the digest on chain
``custody``   the round's base is the study's previous committed model (the genesis for the first)
``quorum``    the commit counted at least the study's minimum of updates
``roles``     every counted update came from an account holding PARTICIPANT at the commit's block,
              and every submitter that held it was counted unless the coordinator rejected it; in a
              secure round, every submitter the commit did not reject held it (its input is in the
              sum, which cannot leave it out)
``rejections`` every update the coordinator rejected (at commit or cancel) really is malformed: the
              same check the coordinator runs (fetch, decrypt, decode, the base model's shapes)
              fails on it; so no well-formed update was kept out
``privacy``   in a study with privacy budgets, every counted update declares the study config's DP-SGD
              (sigma, q, clip, steps per round) under the config's budget (epsilon, delta), and its
              declared epsilon is what its hospital's declared DP parameters give with the accountant
              (:mod:`offchain.rounds.privacy`); an update declaring other parameters must be rejected
              (in a secure round, its masked input is not in the sum: its sender counts as a dropout)
``updates``   every counted update is in the store under its CID, decrypts, hashes to its SHA-256
              on chain, and is a client update for this round
``rederive``  the study's aggregator over the counted updates gives, bit for bit, the bytes whose
              SHA-256 the chain committed
``aggregate`` the committed aggregate is in the store under its CID, decrypts and hashes to that SHA-256
``layout``    the aggregate has the parameter layout (names, shapes, dtypes) the study's config commits to

A cancelled round is reported as such and passes when it committed nothing
and rejected only malformed updates;
an open round is reported and not checked.

A study under secure aggregation is verified by anyone, with no key at all:
its masked inputs, unmasking responses and models are public. There
``rejections`` checks that the commit left out exactly the submitters whose
masked input is not in the sum, ``updates`` that the round's postings on
chain and in the store give the survivors' sum
(:func:`offchain.rounds.secure_board.secure_sum`: every rebuilt mask matches
its commitment), ``rederive`` that the study's aggregator on that sum gives
the committed SHA-256, and ``aggregate`` that the stored aggregate is those bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from fl.artifacts import decode_artifact
from fl.secure_aggregation import SecureAggregationError
from offchain.chain.access import Role
from offchain.rounds.aggregate import RoundAggregation, committed_base_round
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.privacy import PrivacyCheckFailed, privacy_faults
from offchain.rounds.privacy import check_round as check_privacy
from offchain.rounds.sealed import AGGREGATE
from offchain.rounds.secure_board import secure_sum
from offchain.rounds.study import Member, Study, read_public

CHECKS = ("config", "custody", "quorum", "roles", "rejections", "privacy", "updates", "rederive", "aggregate",
          "layout")


@dataclass(frozen=True)
class RoundVerdict:
    """One round's outcome: ``verified`` unless ``failed_check`` names the first check that failed."""

    round: int
    state: str
    verified: bool
    failed_check: str | None = None
    detail: str = ""
    updates: int = 0
    aggregate_cid: str | None = None

    def line(self) -> str:
        if self.state == "open":
            return f"round {self.round}: open, not yet committed"
        if self.state == "cancelled":
            return f"round {self.round}: cancelled" + ("" if self.verified else f"  FAILED {self.failed_check}: {self.detail}")
        if self.verified:
            return f"round {self.round}: verified ({self.updates} updates, aggregate {self.aggregate_cid})"
        return f"round {self.round}: FAILED {self.failed_check}: {self.detail}"

    def to_json(self) -> dict:
        return {"round": self.round, "verified": self.verified, "failed_check": self.failed_check}


class _Failed(Exception):
    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check
        self.detail = detail


def verify_study(member: Member, study: int, rounds: list[int] | None = None) -> Iterator[RoundVerdict]:
    """Yield a verdict per round (all rounds by default), in order."""
    return verify_rounds(Study(member, study), rounds)


def verify_rounds(view: Study, rounds: list[int] | None = None) -> Iterator[RoundVerdict]:
    """Yield a verdict per round of ``view``'s study (all rounds by default), in order, reading the chain
    through ``view`` (which the status and the report share)."""
    member, study = view.member, view.number
    if not _secure(view):
        if member.address not in (view.coordinator, *_auditors(view)):
            raise RoundsError(
                f"{member.address} is neither an auditor nor the coordinator of study {study}: it holds no key")
        member.require_keystore()
    count = view.info.round_count
    wanted = list(range(1, count + 1)) if rounds is None else rounds
    for number in wanted:
        if not 1 <= number <= count:
            raise RoundsError(f"study {study} has rounds 1 to {count}, not {number}")
    try:
        view.config
    except ArtifactCheckFailed as error:
        for number in wanted:
            yield RoundVerdict(number, "unknown", False, "config", str(error))
        return
    aggregation = RoundAggregation(view)
    for number in wanted:
        yield _verify_round(view, aggregation, number)


def _auditors(view: Study) -> tuple[str, ...]:
    try:
        return view.config.auditors
    except ArtifactCheckFailed:
        return ()


def _secure(view: Study) -> bool:
    try:
        return view.secure
    except ArtifactCheckFailed:
        return False


def _verify_round(view: Study, aggregation: RoundAggregation, number: int) -> RoundVerdict:
    info = view.round(number)
    if info.state == "open":
        return RoundVerdict(number, "open", True)
    if info.state == "cancelled":
        if info.aggregate is not None:
            return RoundVerdict(number, "cancelled", False, "custody", "a cancelled round holds an aggregate")
        try:
            if not view.secure:  # no update of a secure round counts once it is cancelled
                _check_rejections(view, aggregation, number, info, view.updates(number))
        except _Failed as failure:
            return RoundVerdict(number, "cancelled", False, failure.check, failure.detail)
        return RoundVerdict(number, "cancelled", True)
    try:
        updates = _check(view, aggregation, number, info)
    except _Failed as failure:
        return RoundVerdict(number, info.state, False, failure.check, failure.detail)
    return RoundVerdict(number, info.state, True, updates=updates, aggregate_cid=str(info.aggregate.cid))


def _check(view: Study, aggregation: RoundAggregation, number: int, info) -> int:
    # custody
    base_round = committed_base_round(view, number)
    expected_base = view.model_ref(base_round)
    if expected_base.commitment() != info.base_commitment:
        raise _Failed("custody", f"the round's base is not the model of round {base_round} ({expected_base.cid})")
    # quorum
    counted = list(info.counted_submitters)
    if len(counted) < view.info.min_updates:
        raise _Failed("quorum", f"{len(counted)} counted updates, the study needs {view.info.min_updates}")
    # roles
    updates = view.updates(number)
    submitters = [update.participant for update in updates]
    block = info.closed_block
    rejected = set(info.rejected_submitters)
    for account in submitters:
        held = bool(Role(_roles_at(view, account, block)) & Role.PARTICIPANT)
        if held and account in rejected:
            continue
        if view.secure and not held and account not in rejected:
            raise _Failed("roles", f"{account} did not hold PARTICIPANT at the commit (block {block}), but its "
                                   f"masked input is in the secure sum: the aggregate holds an input the chain "
                                   f"says was not counted")
        if held != (account in counted):
            state = "held" if held else "did not hold"
            listed = "counted" if account in counted else "not counted"
            raise _Failed("roles", f"{account} {state} PARTICIPANT at the commit (block {block}) but was {listed}")
    if not set(counted) <= set(submitters):
        raise _Failed("roles", "the commit counted an account that submitted nothing")
    if view.secure:
        return _check_secure(view, aggregation, number, info, base_round, submitters)
    # rejections
    _check_rejections(view, aggregation, number, info, updates)
    accepted = [update for update in updates if update.participant in set(counted)]
    _check_privacy(view, number, [update.participant for update in accepted])
    # updates + rederive
    try:
        rederived = aggregation.aggregate(number, base_round, accepted)
    except ArtifactCheckFailed as error:
        raise _Failed("updates", str(error)) from None
    except RoundsError as error:
        raise _Failed("rederive", str(error)) from None
    _check_aggregate(view, number, info, rederived)
    return len(accepted)


def _check_secure(view: Study, aggregation: RoundAggregation, number: int, info, base_round: int,
                  submitters: list[str]) -> int:
    """The checks from ``rejections`` on for a secure round, from the chain and the store alone."""
    try:
        total = secure_sum(view, number)
    except SecureAggregationError as error:
        raise _Failed("updates", f"the round's postings give no secure sum: {error}") from None
    left_out = [account for account in submitters if account not in total.survivors]
    if sorted(left_out) != sorted(info.rejected_submitters):
        raise _Failed("rejections", f"the commit left out {sorted(info.rejected_submitters)}, but the submitters "
                                    f"whose masked input is not in the sum are {sorted(left_out)}")
    # Whose declaration the privacy check refuses is not in the sum: the board counts its masked input as not posted.
    _check_privacy(view, number, list(total.survivors))
    try:
        rederived = aggregation.aggregate_secure(number, base_round, total)
    except RoundsError as error:
        raise _Failed("rederive", str(error)) from None
    _check_aggregate(view, number, info, rederived)
    return len(total.survivors)


def _check_privacy(view: Study, number: int, submitters: list[str]) -> None:
    try:
        check_privacy(view.member.rounds, view.number, number, submitters, view.config)
    except PrivacyCheckFailed as error:
        raise _Failed("privacy", str(error)) from None


def _check_aggregate(view: Study, number: int, info, rederived: bytes) -> None:
    """``rederive``: the re-derived bytes hash to the committed SHA-256; ``aggregate``: the store holds them."""
    if hashlib.sha256(rederived).digest() != info.aggregate.sha256:
        raise _Failed("rederive", f"the counted updates aggregate to bytes other than the committed SHA-256 "
                                  f"0x{info.aggregate.sha256.hex()}")
    try:
        if view.secure:
            stored = read_public(view.member.store, info.aggregate, f"study {view.number} round {number} aggregate")
        else:
            stored = view.open(info.aggregate, view.place(number, AGGREGATE))
    except ArtifactCheckFailed as error:
        raise _Failed("aggregate", str(error)) from None
    if stored != rederived:
        raise _Failed("aggregate", "the stored aggregate differs from the re-derived one")
    _check_layout(view, rederived)


def _check_layout(view: Study, aggregate: bytes) -> None:
    """``layout``: the aggregate is the architecture the study's config commits to."""
    try:
        view.config.model.check_layout(decode_artifact(aggregate).tensors)
    except ValueError as error:  # ModelLayoutMismatch, or bytes that are no model (ArtifactError)
        raise _Failed("layout", str(error)) from None


def _check_rejections(view: Study, aggregation: RoundAggregation, number: int, info, updates) -> None:
    # An update whose DP declaration the privacy check refuses is rightly rejected, well formed or not.
    faulty = privacy_faults(view.member.rounds, view.number, number, [update.participant for update in updates],
                            view.config)
    rejected = [update for update in updates
                if update.participant in set(info.rejected_submitters) and update.participant not in faulty]
    if not rejected:
        return
    screening = aggregation.screen(number, info.base_round, rejected)
    for update, _ in screening.accepted:
        raise _Failed("rejections", f"the coordinator rejected the update of {update.participant} "
                                    f"({update.artifact.cid}), which is well formed")


def _roles_at(view: Study, account: str, block: int) -> int:
    contract = view.member.access.contract
    return int(contract.rolesOf(account, block_id=block))


def report(verdicts: list[RoundVerdict], study: int) -> dict:
    """The JSON the CLI prints last: ``{study, rounds: [{round, verified, failed_check}], ok}``."""
    return {"study": study, "rounds": [v.to_json() for v in verdicts], "ok": all(v.verified for v in verdicts)}
