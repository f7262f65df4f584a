"""The hospital node: watches the chain, trains on each round's base model, submits its sealed update.

Like the coordinator it acts on what the chain says now (:meth:`HospitalNode.step`):
an open round it is invited to, has not submitted to, and whose deadline has
not passed. It fetches the round's base model (the study's latest committed
model, whose commitment must equal the round's base on chain), trains it
with :class:`fl.client.HospitalClient` (FedProx, and DP-SGD when the study
says so, its noise from the OS), seals the update for the coordinator and
the auditors, and submits its CID, SHA-256 and sample count.

In a study under secure aggregation each round runs the protocol's four
steps, one per phase on chain (:mod:`offchain.rounds.secure_board`): advertise
this round's keys (then train while the others advertise), share them, post
the masked update (``trained - base``, flattened and weighted by the sample
count) as the round's update, and answer the unmasking request for the
survivors the chain lists. Its session lives in memory for one round: a node
restarted mid-round sits that round out and is recovered as a dropout. When
the store cannot hand over bytes a step needs, the node waits and tries again
at its next step, until the round's deadline, then refuses (it reveals
nothing on a partial view). Under DP, a round's release is charged to the
node's privacy ledger once its update is on chain, not when it trains.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from fl.aggregation import ClientModel
from fl.client import HospitalClient, distributed_dp_step
from fl.data import Dataset, HospitalData
from fl.models import BUILTIN_MODELS, ParameterLayout
from fl.privacy import NoiseSource, PrivacyBudgetExceeded
from fl.round import HospitalStep
from fl.secure_aggregation import PostingUnavailable, SecureAggregationClient, SecureAggregationError
from offchain.chain.access import Role
from offchain.chain.contract import ChainRefusal
from offchain.rounds.board import ChainRound, UpdateNotTaken
from offchain.rounds.client import ArtifactRef, MissingEvent, SecurePhase
from offchain.rounds.compression import node_compressor
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.evaluation import SiteEvaluation, evaluate_site, post_evaluation
from offchain.rounds.ledger import DatasetLedger, PrivacyCap, study_key
from offchain.rounds.privacy import HospitalSpend, submit_private_update
from offchain.rounds.secure_board import ChainBulletinBoard
from offchain.rounds.study import Member, Study, build_model

Log = Callable[[str], None]
Timer = Callable[[float], None]


@dataclass(frozen=True)
class Step:
    """What one step did: ``submitted``, ``waiting`` or ``done``, and for which round; in a secure
    round also ``advertised`` (keys, then trained), ``shared``, ``unmasked`` or ``refused`` (the
    protocol cannot go on for this node: ``detail`` says why)."""

    action: str
    round: int
    detail: str = ""


class HospitalNode:
    """One hospital in one study, training on ``data``."""

    def __init__(self, member: Member, study: int, data: HospitalData, *, target_rounds: int | None = None,
                 log: Log | None = None, training_time: Timer | None = None, home: Path | None = None,
                 cap: PrivacyCap | None = None, validation: Dataset | None = None,
                 allowed_models: Collection[str] = BUILTIN_MODELS) -> None:
        """``allowed_models``: the model entry points this hospital's node settings allow (its allowlist,
        :mod:`offchain.rounds.node_settings`); a study's model is built, and trained, only from those.
        ``home``: the node's home folder, where its privacy ledger of ``data`` persists across
        restarts and studies (:mod:`offchain.rounds.ledger`); None keeps it in memory only.
        ``cap``: the hospital's own privacy cap over every study on ``data`` (saved in ``home``;
        without one, the cap saved there before, if any). ``validation``: the hospital's validation
        split, on which it scores each round's base model and publishes the metrics with its update
        (:mod:`offchain.rounds.evaluation`); None publishes none."""
        self.member = member
        if validation is not None and validation.num_features != data.data.num_features:
            raise RoundsError(f"{data.name}'s validation split has {validation.num_features} features, its "
                              f"training data {data.data.num_features}")
        self.validation = validation
        self.study = Study(member, study)
        config = self.study.config
        if member.address not in config.participants:
            raise RoundsError(f"{member.address} is not a participant of study {study}")
        member.require_role(Role.PARTICIPANT, "participant")
        member.require_keystore()
        self.allowed_models = tuple(allowed_models)
        build_model(config.model, self.allowed_models, f"study {study}'s")  # before anything else is done
        if home is not None:
            if cap is not None:
                cap.save(home)
            cap = cap or PrivacyCap.load(home)
        self.cap = cap
        if cap is not None and not config.private:
            raise RoundsError(f"study {study} trains without DP, which no privacy cap allows "
                              f"(this node's: epsilon {cap.max_epsilon:g} at delta {cap.delta:g})")
        self.study_key = study_key(member.chain_id, member.rounds.contract.address, study)
        self.compressor = node_compressor(config.compression, home, self.study_key, member.address)
        self.ledger = DatasetLedger.open(home, data) if config.private else None
        history = [] if self.ledger is None or config.dp is None else self.ledger.history(self.study_key)
        self.data = data
        # What this node's published updates released: the history a round that is never published
        # (a stalled or sabotaged secure round) falls back to.
        self._published_history = list(history)
        try:
            self.client = HospitalClient(data, config.model, config.training, config.dp, dp_history=history,
                                         allowed_models=self.allowed_models)
        except ValueError as error:
            raise RoundsError(f"cannot train study {study}'s model on {data.name}: {error}") from None
        # A study with privacy budgets: each update declares its DP spend, and none goes past the budget.
        self.spend = HospitalSpend.of(member.rounds, study, config.dp_accountant)
        if self.spend is not None and not config.private:
            raise RoundsError(f"study {study} sets privacy budgets but its config trains without DP")
        self.target_rounds = target_rounds
        self.log = log or (lambda message: None)
        self.training_time = training_time
        self._sessions: dict[int, _SecureSession] = {}
        # A plain round is the one round step every hospital runs (:mod:`fl.round`), on this node's own
        # training and its saved error feedback.
        self.hospital = HospitalStep(member.address, lambda base, number: self._train(number, base),
                                     encoder=self.compressor)

    def step(self) -> Step:
        self.study.refresh()
        rounds = self.member.rounds
        current = self.study.info.round_count
        if current == 0:
            return Step("waiting", 0, "no round opened yet")
        state = rounds.round_for(self.study.number, current, self.member.address)
        if state.state != "open":
            if self.target_rounds is not None and current >= self.target_rounds:
                self._post_final_evaluation()
                return Step("done", current)
            return Step("waiting", current, f"round {current} is {state.state}")
        if not state.invited:
            return Step("waiting", current, "not invited")
        if state.secure_phase is not None:
            return self._secure_step(current, state)
        if state.submitted:
            return Step("waiting", current, "submitted")
        if rounds.now() > state.deadline:
            return Step("waiting", current, "deadline passed")
        return self._train_and_submit(current, state)

    def run(self, *, idle_seconds: float = 1.0) -> None:
        """Step until round ``target_rounds`` is closed; between steps, wait for a new block (at most
        ``idle_seconds``)."""
        seen = None
        while True:
            head = self.member.rounds.wait_for_block(seen, timeout=idle_seconds)
            if self.step().action == "done":
                return
            seen = head

    def _train_and_submit(self, number: int, state) -> Step:
        parameters = self._base(number, state)
        declared = self._declaration(number)
        if isinstance(declared, Step):
            return declared
        evaluation = self._evaluation(state.base_round, parameters)
        chain_round = ChainRound(self.study, number,
                                 submit=lambda update, samples: self._submit(number, update, samples, declared))
        try:
            posted = self.hospital.step(number, parameters, chain_round, chain_round, evaluation)
        except UpdateNotTaken as refused:
            return refused.outcome
        if self.compressor is not None:
            self.log(f"round {number}: compressed update of {chain_round.size(posted.ref):,} bytes")
        return Step("submitted", number, str(chain_round.artifact(posted.ref).cid))

    def _base(self, number: int, state) -> dict:
        """The round's base model, whose commitment must be the round's base on chain."""
        base_round = state.base_round
        try:
            base = self.study.info.genesis if base_round == 0 else \
                self.member.rounds.committed_aggregate(self.study.number, base_round, state.base_commitment)
        except MissingEvent as error:
            raise ArtifactCheckFailed(f"study {self.study.number} round {number}: its base: {error}") from None
        if base.commitment() != state.base_commitment:
            raise ArtifactCheckFailed(
                f"study {self.study.number} round {number}: its base is not the model of round {base_round} ({base.cid})"
            )
        return _checked_layout(self.study, number, self.study.model(base_round))

    def _evaluation(self, base_round: int, parameters: dict) -> dict[str, str]:
        """The update metadata publishing this node's metrics of the base model (none without a split)."""
        if self.validation is None:
            return {}
        return self._score(base_round, parameters).to_metadata()

    def _score(self, model_round: int, parameters: dict) -> SiteEvaluation:
        try:
            return evaluate_site(self.study.config, model_round, parameters, self.validation, self.allowed_models)
        except ValueError as error:
            raise RoundsError(f"study {self.study.number}: cannot score the model of round {model_round} on "
                              f"{self.data.name}'s validation split: {error}") from None

    def _post_final_evaluation(self) -> None:
        """The study is over for this node: its metrics of the last committed model, which no next
        update will carry, posted on their own, once, if it submitted to that round (a study under
        secure aggregation publishes none)."""
        info = self.study.info
        latest, study = info.latest_round, self.study.number
        if self.validation is None or latest == 0 or info.secure:
            return
        rounds = self.member.rounds
        if not rounds.round_for(study, latest, self.member.address).submitted or any(
                posting.hospital == self.member.address for posting in rounds.evaluations(study, latest)):
            return
        evaluation = self._score(latest, _checked_layout(self.study, latest, self.study.model(latest)))
        try:
            artifact = post_evaluation(self.study, evaluation)
        except ChainRefusal as refusal:
            self.log(f"round {latest}: evaluation not posted: the registry refused it ({refusal.error})")
            return
        self.log(f"round {latest}: posted its evaluation of the final model {artifact.cid}")

    def _declaration(self, number: int):
        """The DP declaration this round's update will carry (None without budgets), or the Step that
        ends the study for this node when training would pass its budget or its own cap."""
        release = self.study.config.dp_round_release
        if self.cap is not None and self.ledger.would_exceed(release, self.cap):
            self.log(f"round {number}: not training: one more round would take this data set past its own cap "
                     f"of epsilon {self.cap.max_epsilon:g} at delta {self.cap.delta:g} (spent "
                     f"{self.ledger.spent(self.cap.delta):.3f} over all its studies)")
            return Step("done", number, "privacy cap reached")
        if self.spend is None:
            return None
        try:
            return self.spend.next(release)
        except PrivacyBudgetExceeded as refusal:
            self.log(f"round {number}: not training: {refusal}")
            return Step("done", number, "privacy budget spent")

    def _train(self, number: int, parameters) -> ClientModel:
        started = time.perf_counter()
        ledger = self.client.ledger
        if ledger is not None and len(ledger.history) != len(self._published_history):
            # An earlier training was never published: it released nothing, so it costs nothing.
            config = self.study.config
            self.client = HospitalClient(self.data, config.model, config.training, config.dp,
                                         dp_history=self._published_history, allowed_models=self.allowed_models)
        try:
            trained = self._distributed_dp_step(parameters) or self.client.train(parameters, number)
        except PrivacyBudgetExceeded as error:
            raise RoundsError(f"study {self.study.number} round {number}: {error}") from None
        if self.training_time is not None:
            self.training_time(time.perf_counter() - started)
        return type(trained)(client_id=self.member.address, parameters=trained.parameters,
                             data_samples=trained.data_samples, training_loss=trained.training_loss,
                             training_accuracy=trained.training_accuracy)

    def _distributed_dp_step(self, parameters) -> ClientModel | None:
        """In a study of record-level distributed DP, this round's training: one step of distributed DP-SGD
        (its noise share in it); None in any other study."""
        config = self.study.config
        distributed = config.distributed_dp
        if distributed is None or not distributed.record_level:
            return None
        stepped = distributed_dp_step(config.model, parameters, self.data.data, distributed,
                                      config.training.learning_rate, NoiseSource.fresh(), self.allowed_models)
        return ClientModel(client_id=self.member.address, parameters=stepped, data_samples=self.data.data.num_samples)

    def _submit(self, number: int, update: ArtifactRef, samples: int, declared) -> Step | None:
        """Submit ``update`` to the round (with its DP declaration in a budgeted study); the Step to
        report instead when the round no longer takes it."""
        try:
            if declared is None:
                self.member.rounds.submit_update(self.study.number, number, update, self._weight(samples))
            else:
                submit_private_update(self.member.rounds, self.study.number, number, update, declared)
        except ChainRefusal as refusal:
            if refusal.error in ("AlreadySubmitted", "RoundNotOpen", "DeadlinePassed", "SecurePhaseMismatch"):
                return Step("waiting", number, refusal.error)
            raise
        self._record_release(number)
        spent = "" if declared is None else f", epsilon {declared.epsilon:.3f} of {self.spend.budget.epsilon:g} spent"
        self.log(f"round {number}: submitted {update.cid} ({samples} samples{spent})")
        return None

    def _record_release(self, number: int) -> None:
        """Charge the update just published on chain to the data set's privacy ledger: a release counts
        once it is public, never before (a round stalled before this node's update costs it nothing)."""
        if self.ledger is not None:
            self.ledger.record(self.study_key, number, self.study.config.dp_round_release)
        if self.client.ledger is not None:
            self._published_history = list(self.client.ledger.history)

    def _weight(self, samples: int) -> int:
        """The update's weight as published (on chain, in the secure sum): its sample count, but 1 in a
        DP study, whose rounds average unweighted: an exact count would tell apart the neighbouring data
        sets (one record added or removed) that the reported epsilon is for."""
        return 1 if self.study.config.private else samples

    # Secure rounds -------------------------------------------------------------------------------

    def secure_session(self, round_number: int) -> SecureAggregationClient | None:
        """This node's secure-aggregation client for ``round_number`` (None: it took no part, or restarted)."""
        session = self._sessions.get(round_number)
        return None if session is None else session.client

    def _secure_step(self, number: int, state) -> Step:
        """One step of the protocol in a secure round: the chain's phase says which."""
        self._sessions = {r: session for r, session in self._sessions.items() if r >= number}
        session = self._sessions.get(number)
        phase = state.secure_phase
        if phase is SecurePhase.KEYS:
            if session is not None:
                return Step("waiting", number, "keys advertised")
            if self.member.rounds.now() > state.deadline:
                return Step("waiting", number, "deadline passed")
            return self._advertise_and_train(number, state)
        if session is None:
            # Keys are advertised in the first phase only: a node that missed it (or restarted) sits the round out.
            return Step("waiting", number, f"not in round {number}'s session (it is in phase {phase.name.lower()})")
        if session.failed:
            return Step("waiting", number, session.failed)
        try:
            if phase is SecurePhase.SHARES and not session.shared:
                session.client.share_keys()
                session.shared = True
                self.log(f"round {number}: shared keys")
                return Step("shared", number)
            if phase is SecurePhase.MASKED_INPUTS and session.shared and not state.submitted:
                if self.member.rounds.now() > state.deadline:
                    return Step("waiting", number, "deadline passed")
                return self._masked_input(number, session)
            if phase is SecurePhase.UNMASKING and state.submitted and not session.unmasked:
                # Survivors as the chain lists them: fl refuses fewer than max(t, 3).
                session.client.unmask()
                session.unmasked = True
                self.log(f"round {number}: sent its unmasking response")
                return Step("unmasked", number)
        except ChainRefusal as refusal:
            if refusal.error in ("SecurePhaseMismatch", "RoundNotOpen"):
                return Step("waiting", number, refusal.error)
            raise
        except PostingUnavailable as error:
            # Another reader may hold those bytes: acting without them could split the views. Ask again
            # at the next step; past the deadline, refuse (reveal nothing) and let the round be cancelled.
            if self.member.rounds.now() <= state.deadline:
                return Step("waiting", number, f"retrying: {error}")
            session.failed = f"refused: bytes it needs stayed unavailable until the deadline: {error}"
            self.log(f"round {number}: {session.failed}")
            return Step("refused", number, session.failed)
        except (SecureAggregationError, ValueError) as error:
            session.failed = f"refused: {error}"
            self.log(f"round {number}: {session.failed}")
            return Step("refused", number, str(error))
        return Step("waiting", number, f"phase {phase.name.lower()}")

    def _advertise_and_train(self, number: int, state) -> Step:
        """Advertise this round's keys, then train while the others advertise theirs."""
        parameters = self._base(number, state)
        declared = self._declaration(number)
        if isinstance(declared, Step):
            return declared
        session = _SecureSession(parameters, declared)
        board = ChainBulletinBoard(self.study, number, submit=lambda update: session.submit(update))
        session.client = SecureAggregationClient(self.member.address, board.session, board)
        try:
            session.client.advertise_keys()
        except ChainRefusal as refusal:
            if refusal.error in ("SecurePhaseMismatch", "RoundNotOpen"):
                return Step("waiting", number, refusal.error)
            raise
        self._sessions[number] = session
        self.log(f"round {number}: advertised keys")
        session.trained = self._train(number, parameters)
        return Step("advertised", number, "keys advertised, model trained")

    def _masked_input(self, number: int, session: _SecureSession) -> Step:
        """Post this node's update, ``trained - base`` flattened and weighted by its sample count, masked."""
        layout = ParameterLayout.of(session.base)
        values = layout.flatten(session.trained.parameters) - layout.flatten(session.base)
        distributed = self.study.config.distributed_dp
        if distributed is not None:  # clipped, plus this node's share of the noise the sum must carry
            values = distributed.privatize(values, NoiseSource.fresh()).to(values.dtype)
        values = values.numpy()
        samples = self._weight(session.trained.data_samples)

        def submit(update: ArtifactRef) -> None:
            step = self._submit(number, update, samples, session.declared)
            if step is not None:
                raise UpdateNotTaken(step)

        session.submit = submit
        try:
            session.client.masked_input(values, samples)
        except UpdateNotTaken as refused:
            return refused.outcome
        return Step("submitted", number, "masked input")


def _checked_layout(study: Study, number: int, parameters: dict) -> dict:
    """``parameters`` if they have the parameter layout the study's config commits to."""
    try:
        study.config.model.check_layout(parameters)
    except ValueError as error:
        raise ArtifactCheckFailed(f"study {study.number} round {number}: its base model: {error}") from None
    return parameters


class _SecureSession:
    """This node's part in one secure round, kept in memory only (a restarted node is a dropout)."""

    def __init__(self, base, declared) -> None:
        self.base = base
        self.declared = declared
        self.client: SecureAggregationClient | None = None
        self.trained: ClientModel | None = None
        self.submit: Callable[[ArtifactRef], None] | None = None
        self.shared = False
        self.unmasked = False
        self.failed = ""
