"""A round's aggregate from its updates: what the coordinator commits and the verifier re-derives.

One function serves both, so the aggregate is defined once. Each update is
fetched and checked (CID, SHA-256, binding), decoded from safetensors, and
must be a client update for this round shaped as the round's base model,
all finite (:meth:`RoundAggregation.screen`). One that fails is
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fl.aggregation import AggregationError, AggregationResult, Aggregator, ClientModel, create_aggregator
from fl.round import CoordinatorStep
from fl.secure_aggregation import SecureSum
from offchain.rounds.board import ChainRound
from offchain.rounds.client import UpdateInfo
from offchain.rounds.evaluation import EVALUATION_METADATA
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.secure_board import secure_sum
from offchain.rounds.study import Study, aggregate_bytes

FETCH_THREADS = 2


@dataclass(frozen=True)
class Screening:
    """A round's updates sorted by the one check every party runs: well-formed (with their decoded
    models) or malformed (with the reason), each in submission order."""

    accepted: list[tuple[UpdateInfo, ClientModel]]
    rejected: list[tuple[UpdateInfo, str]]


class RoundAggregation:
    """The study's aggregator, stepped through its committed rounds in order: the round's
    :class:`fl.round.CoordinatorStep` (the simulation's too) over the chain's rounds
    (:class:`offchain.rounds.board.ChainRound`)."""

    def __init__(self, study: Study) -> None:
        self.study = study
        config = study.config
        self.aggregator: Aggregator = create_aggregator(config.aggregator, config.aggregator_params)
        # Two fetches at a time: decryption and hashing release the GIL.
        self.step = CoordinatorStep(self.aggregator, config.compression, optional_metadata=(EVALUATION_METADATA,),
                                    threads=FETCH_THREADS)
        self.last_result: tuple[int, dict[str, torch.Tensor]] | None = None  # the last aggregate's tensors

    def screen(self, round_number: int, base_round: int, updates: Sequence[UpdateInfo]) -> Screening:
        """The one check on each of ``updates``: fetched, opened (CID, SHA-256, binding), sealed for
        every update reader, decoded, a client update for this round shaped as the base model, all
        finite (:meth:`fl.round.CoordinatorStep.screen`). The coordinator rejects an update that fails
        and auditors re-run this very check on it."""
        chain_round = ChainRound(self.study, round_number, listed=updates)
        screening = self.step.screen(round_number, self.study.model(base_round), chain_round, chain_round)
        by_participant = {update.participant: update for update in updates}
        return Screening(accepted=[(by_participant[client.client_id], client) for client in screening.accepted],
                         rejected=[(by_participant[who], f"the update of {who}: {reason}")
                                   for who, reason in screening.rejected])

    def aggregate(self, round_number: int, base_round: int, updates: Sequence[UpdateInfo] = (),
                  progress: Callable[[str], None] | None = None, *,
                  clients: Sequence[ClientModel] | None = None) -> bytes:
        """The aggregate's canonical bytes for ``round_number`` from the counted ``updates``
        (ArtifactCheckFailed if one is malformed), or from ``clients``, those updates already screened."""
        self.catch_up(round_number, progress)
        if clients is None:
            screening = self.screen(round_number, base_round, updates)
            if screening.rejected:
                raise ArtifactCheckFailed(screening.rejected[0][1])
            clients = [client for _, client in screening.accepted]
        base = self.study.model(base_round)
        return self._combine(round_number, lambda: self.step.aggregate(round_number, clients, base))

    def aggregate_secure(self, round_number: int, base_round: int, total: SecureSum,
                         progress: Callable[[str], None] | None = None) -> bytes:
        """The aggregate's canonical bytes for a secure round from its sum alone: the study's
        (sum-based) aggregator on base + the survivors' mean update, weighted by their sample counts."""
        self.catch_up(round_number, progress)
        base = self.study.model(base_round)
        return self._combine(round_number, lambda: self.step.aggregate_secure(round_number, base, total))

    def _combine(self, round_number: int, run: Callable[[], AggregationResult]) -> bytes:
        try:
            result = run()
        except AggregationError as error:
            raise RoundsError(f"study {self.study.number} round {round_number}: cannot aggregate: {error}") from None
        self.last_result = (round_number, result.parameters)
        return aggregate_bytes(self.study.number, round_number, result.parameters)

    def catch_up(self, round_number: int, progress: Callable[[str], None] | None = None) -> None:
        """Replay the committed rounds before ``round_number`` into a stateful aggregator's state."""

        def replay(earlier: int) -> None:
            if self.study.round(earlier).state != "committed":
                return
            if progress is not None:
                progress(f"replaying round {earlier} into {self.aggregator.name}'s state")
            base_round = committed_base_round(self.study, earlier)
            if self.study.secure:
                self.aggregate_secure(earlier, base_round, secure_sum(self.study, earlier))
            else:
                self.aggregate(earlier, base_round, counted_updates(self.study, earlier))

        self.step.catch_up(round_number, replay)


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
