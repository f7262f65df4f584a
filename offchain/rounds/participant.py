"""The hospital node: watches the chain, trains on each round's base model, submits its sealed update.

Like the coordinator it acts on what the chain says now (:meth:`HospitalNode.step`):
an open round it is invited to, has not submitted to, and whose deadline has
not passed. It fetches the round's base model (the study's latest committed
model, whose commitment must equal the round's base on chain), trains it
with :class:`fl.client.HospitalClient` (FedProx, and DP-SGD when the study
says so, its noise from the OS), seals the update for the coordinator and
the auditors, and submits its CID, SHA-256 and sample count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fl.artifacts import encode_client_model
from fl.client import HospitalClient
from fl.data import HospitalData
from fl.privacy import PrivacyBudgetExceeded
from offchain.chain import Role
from offchain.contract_client import ChainRefusal
from offchain.rounds.client import MissingEvent
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.ledger import ledger_path, load_history, load_rounds, save_history
from offchain.rounds.privacy import HospitalSpend, submit_private_update
from offchain.rounds.study import Member, Study

Log = Callable[[str], None]
Timer = Callable[[float], None]


@dataclass(frozen=True)
class Step:
    """What one step did: ``submitted``, ``waiting`` or ``done``, and for which round."""

    action: str
    round: int
    detail: str = ""


class HospitalNode:
    """One hospital in one study, training on ``data``."""

    def __init__(self, member: Member, study: int, data: HospitalData, *, target_rounds: int | None = None,
                 log: Log | None = None, training_time: Timer | None = None, home: Path | None = None) -> None:
        """``home``: the node's home folder, where its privacy ledger for the study persists across
        restarts (:mod:`offchain.rounds.ledger`); None keeps it in memory only."""
        self.member = member
        self.study = Study(member, study)
        config = self.study.config
        if member.address not in config.participants:
            raise RoundsError(f"{member.address} is not a participant of study {study}")
        member.require_role(Role.PARTICIPANT, "participant")
        member.require_keystore()
        self.ledger_path = None
        self.ledger_rounds: list[int] = []
        history = []
        if home is not None and config.dp is not None:
            self.ledger_path = ledger_path(home, member.chain_id, member.rounds.contract.address, study, member.address)
            history = load_history(self.ledger_path)
            self.ledger_rounds = load_rounds(self.ledger_path)
        try:
            self.client = HospitalClient(data, config.model, config.training, config.dp, dp_history=history)
        except ValueError as error:
            raise RoundsError(f"cannot train study {study}'s model on {data.name}: {error}") from None
        # A study with privacy budgets: each update declares its DP spend, and none goes past the budget.
        self.spend = HospitalSpend.of(member.rounds, study)
        if self.spend is not None and config.dp is None:
            raise RoundsError(f"study {study} sets privacy budgets but its config trains without DP-SGD")
        self.target_rounds = target_rounds
        self.log = log or (lambda message: None)
        self.training_time = training_time

    def step(self) -> Step:
        self.study.refresh()
        rounds = self.member.rounds
        current = self.study.info.round_count
        if current == 0:
            return Step("waiting", 0, "no round opened yet")
        state = rounds.round_for(self.study.number, current, self.member.address)
        if state.state != "open":
            if self.target_rounds is not None and current >= self.target_rounds:
                return Step("done", current)
            return Step("waiting", current, f"round {current} is {state.state}")
        if not state.invited:
            return Step("waiting", current, "not invited")
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
        # The registry opened the round on the study's latest model; its commitment must name the bytes.
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
        parameters = self.study.model(base_round)
        declared = None
        if self.spend is not None:
            try:
                declared = self.spend.next(self.client.dp_round_parameters)
            except PrivacyBudgetExceeded as refusal:
                self.log(f"round {number}: not training: {refusal}")
                return Step("done", number, "privacy budget spent")
        started = time.perf_counter()
        try:
            trained = self.client.train(parameters, number)
        except PrivacyBudgetExceeded as error:
            raise RoundsError(f"study {self.study.number} round {number}: {error}") from None
        if self.ledger_path is not None and self.client.ledger is not None:
            # Spent once trained, whatever becomes of the update: recorded before it is published.
            self.ledger_rounds.append(number)
            save_history(self.ledger_path, self.ledger_rounds, self.client.ledger.history)
        if self.training_time is not None:
            self.training_time(time.perf_counter() - started)
        model = type(trained)(client_id=self.member.address, parameters=trained.parameters,
                              data_samples=trained.data_samples, training_loss=trained.training_loss,
                              training_accuracy=trained.training_accuracy)
        update = self.study.seal_update(number, encode_client_model(model, number))
        try:
            if declared is None:
                self.member.rounds.submit_update(self.study.number, number, update, model.data_samples)
            else:
                submit_private_update(self.member.rounds, self.study.number, number, update, model.data_samples,
                                      declared)
        except ChainRefusal as refusal:
            if refusal.error in ("AlreadySubmitted", "RoundNotOpen", "DeadlinePassed"):
                return Step("waiting", number, refusal.error)
            raise
        spent = "" if declared is None else f", epsilon {declared.epsilon:.3f} of {self.spend.budget.epsilon:g} spent"
        self.log(f"round {number}: submitted {update.cid} ({model.data_samples} samples{spent})")
        return Step("submitted", number, str(update.cid))
