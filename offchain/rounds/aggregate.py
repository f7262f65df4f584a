"""A round's aggregate from its updates: what the coordinator commits and the verifier re-derives.

One function serves both, so the aggregate is defined once. Each counted
update is fetched and checked (CID, SHA-256, binding), decoded from
safetensors, and must be a client update for this round by this account;
it enters the aggregator as ``ClientModel(client_id=<account>,
data_samples=<samples declared on chain>)``. The study's aggregator then
combines them (its result does not depend on their order) from the round's
base model. Stateful aggregators (FedAdam's moments) are replayed from the
study's first committed round, so the state too comes from the chain alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from fl.aggregation import AggregationError, Aggregator, ClientModel, create_aggregator
from fl.artifacts import ArtifactError, decode_client_model
from offchain.rounds.errors import ArtifactCheckFailed, RoundsError
from offchain.rounds.sealed import UPDATE
from offchain.rounds.study import Study, aggregate_bytes

FETCH_THREADS = 2


class RoundAggregation:
    """The study's aggregator, stepped through its committed rounds in order."""

    def __init__(self, study: Study) -> None:
        self.study = study
        config = study.config
        self.aggregator: Aggregator = create_aggregator(config.aggregator, config.aggregator_params)
        self.stateful = hasattr(self.aggregator, "load_state_dict")
        self.applied_through = 0  # rounds whose aggregation the aggregator's state includes

    def fetch_updates(self, round_number: int, updates: Sequence) -> list[ClientModel]:
        """Each update fetched, checked and decoded (two at a time: decryption and hashing release the GIL)."""

        def fetch(update) -> ClientModel:
            place = self.study.place(round_number, UPDATE, update.participant)
            data = self.study.open(update.artifact, place)
            try:
                model, declared_round = decode_client_model(data)  # open() checked its SHA-256
            except ArtifactError as error:
                raise ArtifactCheckFailed(f"{place.describe()}: {error}") from None
            if declared_round != round_number:
                raise ArtifactCheckFailed(f"{place.describe()}: the update says it is for round {declared_round}")
            return ClientModel(client_id=update.participant, parameters=model.parameters, data_samples=update.samples)

        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            return list(pool.map(fetch, updates))

    def aggregate(self, round_number: int, base_round: int, updates: Sequence,
                  progress: Callable[[str], None] | None = None) -> bytes:
        """The aggregate's canonical bytes for ``round_number`` from the counted ``updates``."""
        self.catch_up(round_number, progress)
        base = self.study.model(base_round)
        clients = self.fetch_updates(round_number, updates)
        try:
            result = self.aggregator.aggregate(clients, global_model=base)
        except AggregationError as error:
            raise RoundsError(f"study {self.study.number} round {round_number}: cannot aggregate: {error}") from None
        self.applied_through = round_number
        return aggregate_bytes(self.study.number, round_number, result.parameters)

    def catch_up(self, round_number: int, progress: Callable[[str], None] | None = None) -> None:
        """Replay the committed rounds before ``round_number`` into a stateful aggregator's state."""
        if not self.stateful:
            self.applied_through = round_number - 1
            return
        rounds = self.study.member.rounds
        for earlier in range(self.applied_through + 1, round_number):
            info = rounds.round(self.study.number, earlier)
            if info.state != "committed":
                continue
            if progress is not None:
                progress(f"replaying round {earlier} into {self.aggregator.name}'s state")
            counted = counted_updates(self.study, earlier)
            base_round = committed_base_round(self.study, earlier)
            self.aggregate(earlier, base_round, counted)
        self.applied_through = round_number - 1


def counted_updates(study: Study, round_number: int) -> list:
    """The updates a committed round counted (its commit event's set), in submission order."""
    info = study.member.rounds.round(study.number, round_number)
    counted = set(info.counted_submitters)
    return [update for update in study.member.rounds.updates(study.number, round_number) if update.participant in counted]


def committed_base_round(study: Study, round_number: int) -> int:
    """The round whose model ``round_number`` started from: the last committed round before it (0: genesis)."""
    rounds = study.member.rounds
    for earlier in range(round_number - 1, 0, -1):
        if rounds.round(study.number, earlier).state == "committed":
            return earlier
    return 0
