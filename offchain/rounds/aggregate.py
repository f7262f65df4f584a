"""A round's aggregate from its updates: what the coordinator commits and the verifier re-derives.

One function serves both, so the aggregate is defined once. Each update is
fetched and checked (CID, SHA-256, binding), decoded from safetensors, and
must be a client update for this round shaped as the round's base model,
all finite (:meth:`RoundAggregation.check_update`). One that fails is
malformed: the coordinator rejects it (the registry records the rejection)
and every auditor re-runs the same check on it. A well-formed update
enters the aggregator as ``ClientModel(client_id=<account>,
data_samples=<samples declared on chain>)``. The study's aggregator then
combines them (its result does not depend on their order) from the round's
base model. Stateful aggregators (FedAdam's moments) are replayed from the
study's first committed round, so the state too comes from the chain alone.

Under secure aggregation no update is readable: the round's masked inputs
and unmasking responses give the survivors' sum
(:func:`offchain.rounds.secure_board.secure_sum`), and the study's
sum-based aggregator combines from their weighted mean
(:meth:`RoundAggregation.aggregate_secure`), with no key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from fl.aggregation import AggregationError, AggregationResult, Aggregator, ClientModel, create_aggregator
from fl.artifacts import ArtifactError
from fl.round import CoordinatorStep, PostedUpdate, combine, combine_secure
from fl.secure_aggregation import SecureSum
from offchain.rounds.evaluation import EVALUATION_METADATA
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.sealed import UPDATE, readers_of
from offchain.rounds.secure_board import secure_sum
from offchain.rounds.study import Study, aggregate_bytes

FETCH_THREADS = 2


@dataclass(frozen=True)
class Screening:
    """A round's updates sorted by the one check every party runs: well-formed (with their decoded
    models) or malformed (with the reason), each in submission order."""

    accepted: list[tuple[Any, ClientModel]]
    rejected: list[tuple[Any, str]]


class RoundAggregation:
    """The study's aggregator, stepped through its committed rounds in order."""

    def __init__(self, study: Study) -> None:
        self.study = study
        config = study.config
        self.aggregator: Aggregator = create_aggregator(config.aggregator, config.aggregator_params)
        # The one check and combination of a round (:mod:`fl.round`), the simulation's too.
        self.step = CoordinatorStep(self.aggregator, config.compression, optional_metadata=(EVALUATION_METADATA,))
        self.stateful = hasattr(self.aggregator, "load_state_dict")
        self.applied_through = 0  # rounds whose aggregation the aggregator's state includes
        self.last_result: tuple[int, dict[str, torch.Tensor]] | None = None  # the last aggregate's tensors

    def check_update(self, round_number: int, update, base: Mapping[str, torch.Tensor]) -> ClientModel:
        """The update fetched, checked and decoded; ArtifactCheckFailed if it is malformed.

        Malformed: not in the store under its CID, no key for one of the study's update readers
        (coordinator, auditors), does not decrypt, does not
        hash to its SHA-256 on chain, is not safetensors, is not a client update for this round, or
        its tensors are not the base model's (same names, shapes and dtypes) or not all finite. The
        coordinator rejects such an update and auditors re-run this very check on it.
        """
        place = self.study.place(round_number, UPDATE, update.participant)
        data = self.study.open(update.artifact, place)
        # Sealed for every reader the study names, or the coordinator and an auditor could disagree.
        carried = {reader.lower() for reader in readers_of(self.study.member.store, update.artifact.cid)}
        unreadable = [reader for reader in self.study.update_readers() if reader.lower() not in carried]
        if unreadable:
            raise ArtifactCheckFailed(f"{place.describe()}: carries no key for {', '.join(unreadable)}")
        # A DP study averages unweighted: its counts are never published (a private update declares 0).
        weight = 1 if self.study.config.private else update.samples
        posted = PostedUpdate(update.participant, str(update.artifact.cid), weight)
        try:
            return self.step.check(round_number, base, posted, data)  # open() checked its SHA-256
        except ArtifactError as error:
            raise ArtifactCheckFailed(f"{place.describe()}: {error}") from None

    def screen(self, round_number: int, base_round: int, updates: Sequence) -> Screening:
        """Run :meth:`check_update` on each of ``updates`` (two at a time: decryption and hashing
        release the GIL)."""
        base = self.study.model(base_round)

        def check(update):
            try:
                return update, self.check_update(round_number, update, base)
            except ArtifactCheckFailed as error:
                return update, error

        accepted, rejected = [], []
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            for update, outcome in pool.map(check, updates):
                if isinstance(outcome, ArtifactCheckFailed):
                    rejected.append((update, str(outcome)))
                else:
                    accepted.append((update, outcome))
        return Screening(accepted, rejected)

    def aggregate(self, round_number: int, base_round: int, updates: Sequence,
                  progress: Callable[[str], None] | None = None, *,
                  clients: Sequence[ClientModel] | None = None) -> bytes:
        """The aggregate's canonical bytes for ``round_number`` from the counted ``updates``
        (ArtifactCheckFailed if one is malformed); ``clients``: those updates already screened."""
        self.catch_up(round_number, progress)
        if clients is None:
            screening = self.screen(round_number, base_round, updates)
            if screening.rejected:
                raise ArtifactCheckFailed(screening.rejected[0][1])
            clients = [client for _, client in screening.accepted]
        base = self.study.model(base_round)
        return self._combine(round_number, lambda: combine(self.aggregator, clients, base))

    def aggregate_secure(self, round_number: int, base_round: int, total: SecureSum,
                         progress: Callable[[str], None] | None = None) -> bytes:
        """The aggregate's canonical bytes for a secure round from its sum alone: the study's
        (sum-based) aggregator on base + the survivors' mean update, weighted by their sample counts."""
        self.catch_up(round_number, progress)
        base = self.study.model(base_round)
        return self._combine(round_number, lambda: combine_secure(self.aggregator, base, total))

    def _combine(self, round_number: int, run: Callable[[], AggregationResult]) -> bytes:
        try:
            result = run()
        except AggregationError as error:
            raise RoundsError(f"study {self.study.number} round {round_number}: cannot aggregate: {error}") from None
        self.applied_through = round_number
        self.last_result = (round_number, result.parameters)
        return aggregate_bytes(self.study.number, round_number, result.parameters)

    def catch_up(self, round_number: int, progress: Callable[[str], None] | None = None) -> None:
        """Replay the committed rounds before ``round_number`` into a stateful aggregator's state."""
        if not self.stateful:
            self.applied_through = round_number - 1
            return
        for earlier in range(self.applied_through + 1, round_number):
            info = self.study.round(earlier)
            if info.state != "committed":
                continue
            if progress is not None:
                progress(f"replaying round {earlier} into {self.aggregator.name}'s state")
            base_round = committed_base_round(self.study, earlier)
            if self.study.secure:
                self.aggregate_secure(earlier, base_round, secure_sum(self.study, earlier))
            else:
                self.aggregate(earlier, base_round, counted_updates(self.study, earlier))
        self.applied_through = round_number - 1


def counted_updates(study: Study, round_number: int) -> list:
    """The updates a committed round counted (its commit event's set), in submission order."""
    counted = set(study.round(round_number).counted_submitters)
    return [update for update in study.updates(round_number) if update.participant in counted]


def committed_base_round(study: Study, round_number: int) -> int:
    """The round whose model ``round_number`` started from: the last committed round before it (0: genesis)."""
    for earlier in range(round_number - 1, 0, -1):
        if study.round(earlier).state == "committed":
            return earlier
    return 0
