"""One federated round, defined once: what a hospital sends, and how the coordinator reads and combines it.

The chain path (:mod:`offchain.rounds`: the hospital node, the coordinator and the verifier) and the
in-process simulation (:mod:`fl.simulation`) both run these steps. They differ only in where an
update's bytes are kept and how it is posted to the round, behind two small protocols: an
:class:`UpdateStore` (put and get bytes; the chain path seals them into IPFS) and an
:class:`UpdateBoard` (post and read a round's updates; the chain path's is the round registry).
:class:`InMemoryStore` and :class:`InMemoryBoard` serve the simulation.

- A hospital trains from the round's base (:class:`fl.client.HospitalClient`: FedProx, DP-SGD),
  and encodes the result (:func:`encode_update`): its client model, or under compression its change
  from the base, top-k/int8 with error feedback (:mod:`fl.compression`).
- The coordinator decodes each posted update on the base (:func:`decode_update`), refuses a
  malformed one (:func:`check_update`), and combines the counted ones by the study's aggregator
  from the base (:func:`combine`), or under secure aggregation from the survivors' sum alone
  (:func:`combine_secure`). The verifier re-derives the aggregate by the same two functions.
- A Byzantine hospital (tests and benches) sends :func:`poison` of its model.

The chain's coordinator polls a round until it closes: :meth:`CoordinatorStep.screen` keeps outcomes
in a :class:`ScreeningMemo` so each update is checked once, fetches with ``threads``, and rejects
unread what the round refuses whatever the bytes (a DP declaration); :meth:`CoordinatorStep.catch_up`
replays the rounds a stateful aggregator missed. The rejected it returns are what the commit records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import torch

from fl.aggregation import AggregationResult, Aggregator, ClientModel
from fl.artifacts import ArtifactError, decode_client_model, encode_client_model
from fl.compression import (
    CompressedTensor,
    CompressionConfig,
    ErrorFeedbackCompressor,
    decode_compressed_update,
    encode_compressed_update,
)
from fl.models import ParameterLayout
from fl.secure_aggregation import SecureSum

Parameters = Mapping[str, torch.Tensor]


def poison(base: Parameters, model: ClientModel, scale: float) -> ClientModel:
    """The sign-flipped, scaled model a Byzantine hospital sends: ``base - scale * (model - base)``."""
    return ClientModel(
        client_id=model.client_id,
        parameters={name: tensor - scale * (model.parameters[name] - tensor) for name, tensor in base.items()},
        data_samples=model.data_samples,
        training_loss=model.training_loss,
        training_accuracy=model.training_accuracy,
    )


def compress_change(compressor: ErrorFeedbackCompressor, base: Parameters,
                    trained: Parameters) -> tuple[dict[str, CompressedTensor], dict[str, torch.Tensor]]:
    """``trained - base`` (plus the residual) compressed, and the residual it leaves, which the caller
    keeps only once the update was taken; ValueError for a model that is not all floating point."""
    for name, tensor in base.items():
        if not tensor.is_floating_point():
            raise ValueError(f"the model's {name!r} is {tensor.dtype}: only floating-point models compress")
    return compressor.propose({name: trained[name].detach().float() - tensor.float() for name, tensor in base.items()})


def encode_update(round_number: int, base: Parameters, model: ClientModel,
                  compressor: ErrorFeedbackCompressor | None = None,
                  metadata: Mapping[str, str] | None = None) -> tuple[bytes, dict[str, torch.Tensor] | None]:
    """An update's stored bytes, with ``metadata`` beside its own: the client model, or with a
    ``compressor`` its change from ``base`` compressed; and the residual to keep once it is taken."""
    if compressor is None:
        return encode_client_model(model, round_number, metadata), None
    compressed, residual = compress_change(compressor, base, model.parameters)
    return encode_compressed_update(compressed, round_number, metadata), residual


def decode_update(data: bytes, base: Parameters, compression: CompressionConfig | None,
                  optional_metadata: Collection[str] = ()) -> tuple[dict[str, torch.Tensor], int]:
    """The model an update stands for and the round it declares: a client update, or under
    ``compression`` ``base + update`` in the base's dtypes (the same float32 arithmetic for every
    reader, so the aggregate is re-derived bit for bit); ArtifactError for anything else."""
    if compression is None:
        model, declared_round = decode_client_model(data)
        return dict(model.parameters), declared_round
    for name, tensor in base.items():
        if not tensor.is_floating_point():
            raise ArtifactError(f"the model's {name!r} is {tensor.dtype}: only floating-point models compress")
    compressed, declared_round = decode_compressed_update(data, {n: tuple(t.shape) for n, t in base.items()},
                                                          compression, optional_metadata=optional_metadata)
    parameters = {name: (tensor.float() + compressed[name].decode()).to(tensor.dtype) for name, tensor in base.items()}
    return parameters, declared_round


def check_update(parameters: Parameters, declared_round: int, round_number: int, base: Parameters) -> None:
    """ArtifactError unless a decoded update is for ``round_number`` and holds the base model's tensors
    (same names, shapes and dtypes), all finite."""
    if declared_round != round_number:
        raise ArtifactError(f"the update says it is for round {declared_round}")
    if parameters.keys() != base.keys():
        raise ArtifactError(f"its tensors {sorted(parameters)} are not the model's {sorted(base)}")
    for name, tensor in parameters.items():
        expected = base[name]
        if tensor.shape != expected.shape or tensor.dtype != expected.dtype:
            raise ArtifactError(f"{name} is {tensor.dtype} {tuple(tensor.shape)}, the model's is "
                                f"{expected.dtype} {tuple(expected.shape)}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ArtifactError(f"{name} holds NaN or infinite values")


def combine(aggregator: Aggregator, clients: Sequence[ClientModel], base: Parameters) -> AggregationResult:
    """The round's aggregate: the study's aggregator on the counted updates, from the base."""
    return aggregator.aggregate(list(clients), global_model=base)


def combine_secure(aggregator: Aggregator, base: Parameters, total: SecureSum) -> AggregationResult:
    """A secure round's aggregate from the survivors' sum alone: the (sum-based) aggregator on base +
    their mean update, weighted by their sample counts."""
    layout = ParameterLayout.of(base)
    mean = layout.unflatten(layout.flatten(base) + torch.from_numpy(total.mean))
    return aggregator.aggregate_mean(mean, total.total_weight, global_model=base)


# Where updates go ---------------------------------------------------------------------------------


class UpdateStore(Protocol):
    """Keeps an update's bytes under a reference."""

    def put(self, data: bytes) -> str: ...

    def get(self, ref: str) -> bytes: ...


@dataclass(frozen=True)
class PostedUpdate:
    """An update as its round lists it: who sent it, where its bytes are, and its weight."""

    participant: str
    ref: str
    weight: int


class UpdateBoard(Protocol):
    """A round's list of posted updates, one per participant."""

    def post(self, round_number: int, update: PostedUpdate) -> None: ...

    def updates(self, round_number: int) -> list[PostedUpdate]: ...


class InMemoryStore:
    """Bytes by their SHA-256, in this process."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        self._blobs[ref] = bytes(data)
        return ref

    def get(self, ref: str) -> bytes:
        try:
            return self._blobs[ref]
        except KeyError:
            raise ArtifactError(f"no update {ref} in the store") from None

    def size(self, ref: str) -> int:
        return len(self._blobs[ref])


class InMemoryBoard:
    """Rounds' posted updates in this process; like the registry, one update a participant a round."""

    def __init__(self) -> None:
        self._rounds: dict[int, list[PostedUpdate]] = {}

    def post(self, round_number: int, update: PostedUpdate) -> None:
        posted = self._rounds.setdefault(round_number, [])
        if any(earlier.participant == update.participant for earlier in posted):
            raise ValueError(f"{update.participant} already posted an update to round {round_number}")
        posted.append(update)

    def updates(self, round_number: int) -> list[PostedUpdate]:
        return list(self._rounds.get(round_number, ()))


# The steps ---------------------------------------------------------------------------------------


class UpdateEncoder:
    """A hospital's update bytes (:func:`encode_update`): its client model, or under ``compression`` its
    change from the base with error feedback, whose residual moves on only once :meth:`keep` says the
    round took the update."""

    def __init__(self, compression: CompressionConfig | None = None) -> None:
        self.compressor = None if compression is None else ErrorFeedbackCompressor(compression)
        self._pending: dict[str, torch.Tensor] | None = None

    def encode(self, round_number: int, base: Parameters, model: ClientModel,
               metadata: Mapping[str, str] | None = None) -> bytes:
        data, self._pending = encode_update(round_number, base, model, self.compressor, metadata)
        return data

    def keep(self) -> bool:
        """Carry the residual of the update just encoded on; False when there was none to carry."""
        if self._pending is None:
            return False
        self.compressor.residual, self._pending = self._pending, None
        return True


class HospitalStep:
    """One hospital's part in each round: train from the base, encode, store, post; its error-feedback
    residual moves on only once the board took the update (a board refuses one by raising).
    ``train``: the hospital's own training; ``encoder``: its saved encoding state (a node's residual
    kept across restarts), else a fresh one for ``compression``."""

    def __init__(self, client_id: str, train: Callable[[Parameters, int], ClientModel],
                 compression: CompressionConfig | None = None, byzantine_scale: float | None = None, *,
                 encoder: UpdateEncoder | None = None) -> None:
        self.client_id = client_id
        self.train = train
        self.encoder = encoder if encoder is not None else UpdateEncoder(compression)
        self.byzantine_scale = byzantine_scale

    def step(self, round_number: int, base: Parameters, board: UpdateBoard, store: UpdateStore,
             metadata: Mapping[str, str] | None = None) -> PostedUpdate:
        model = self.train(base, round_number)
        if self.byzantine_scale is not None:
            model = poison(base, model, self.byzantine_scale)
        data = self.encoder.encode(round_number, base, model, metadata)
        posted = PostedUpdate(self.client_id, store.put(data), model.data_samples)
        board.post(round_number, posted)
        self.encoder.keep()
        return posted


@dataclass(frozen=True)
class Screening:
    """A round's posted updates sorted by the one check: well-formed (decoded) or malformed (why).
    ``posted``: every update the board listed, in its order; ``checked``: whose update this screening
    judged itself (checked, or refused unread), not taken from a :class:`ScreeningMemo`."""

    accepted: list[ClientModel]
    rejected: list[tuple[str, str]]
    posted: tuple[PostedUpdate, ...] = ()
    checked: tuple[str, ...] = ()


Outcome = ClientModel | str  # an update's decoded model, or why it is malformed


class ScreeningMemo:
    """Outcomes of the check kept across a coordinator's polls of a round: a posted update never
    changes, so each is checked once (again only if the board lists other bytes under its poster)."""

    def __init__(self) -> None:
        self._outcomes: dict[tuple[int, str], tuple[str, Outcome]] = {}

    def outcome(self, round_number: int, posted: PostedUpdate) -> Outcome | None:
        ref, outcome = self._outcomes.get((round_number, posted.participant), (None, None))
        return outcome if ref == posted.ref else None

    def keep(self, round_number: int, posted: PostedUpdate, outcome: Outcome) -> None:
        self._outcomes[round_number, posted.participant] = (posted.ref, outcome)

    def forget_through(self, round_number: int) -> None:
        """Drop the outcomes of rounds up to ``round_number`` (closed: never polled again)."""
        self._outcomes = {key: kept for key, kept in self._outcomes.items() if key[0] > round_number}


Refuse = Callable[[Sequence[PostedUpdate]], Mapping[str, str]]


class CoordinatorStep:
    """The coordinator's part: read the round's posted updates, check each on the base, combine.

    ``threads``: how many updates :meth:`screen` fetches and checks at once (a store that decrypts
    and hashes releases the GIL). A stateful aggregator (FedAdam's moments) takes the rounds in
    order; :meth:`catch_up` replays the ones it missed (a coordinator started mid-study)."""

    def __init__(self, aggregator: Aggregator, compression: CompressionConfig | None = None,
                 optional_metadata: Collection[str] = (), *, threads: int = 1) -> None:
        """``optional_metadata``: what a compressed update may carry beside its own (a node's metrics)."""
        self.aggregator = aggregator
        self.compression = compression
        self.optional_metadata = tuple(optional_metadata)
        self.threads = threads
        self.applied_through = 0  # rounds whose aggregation the aggregator's state includes

    @property
    def stateful(self) -> bool:
        return hasattr(self.aggregator, "load_state_dict")

    def check(self, round_number: int, base: Parameters, posted: PostedUpdate, data: bytes) -> ClientModel:
        """A posted update's bytes decoded on the base and checked; ArtifactError if it is malformed."""
        parameters, declared_round = decode_update(data, base, self.compression, self.optional_metadata)
        check_update(parameters, declared_round, round_number, base)
        return ClientModel(client_id=posted.participant, parameters=parameters, data_samples=posted.weight)

    def screen(self, round_number: int, base: Parameters, board: UpdateBoard, store: UpdateStore,
               memo: ScreeningMemo | None = None, *, refuse: Refuse | None = None) -> Screening:
        """Check every update the board lists for the round: fetched from the store (an ArtifactError
        there makes it malformed too) and decoded on the base. ``memo``: outcomes of earlier polls,
        reused and extended; ``refuse``: which posted updates the round refuses whatever their bytes,
        and why (a DP declaration the study does not allow), rejected unread."""
        posted = board.updates(round_number)
        refused = dict(refuse(posted)) if refuse is not None else {}
        outcomes: dict[str, Outcome] = dict(refused)
        fresh = []
        for update in posted:
            if update.participant in refused:
                continue
            known = memo.outcome(round_number, update) if memo is not None else None
            if known is None:
                fresh.append(update)
            else:
                outcomes[update.participant] = known

        def check(update: PostedUpdate) -> Outcome:
            try:
                return self.check(round_number, base, update, store.get(update.ref))
            except ArtifactError as error:
                return str(error)

        if self.threads > 1 and len(fresh) > 1:
            with ThreadPoolExecutor(self.threads) as pool:
                checked = list(pool.map(check, fresh))
        else:
            checked = [check(update) for update in fresh]
        for update, outcome in zip(fresh, checked):
            outcomes[update.participant] = outcome
            if memo is not None:
                memo.keep(round_number, update, outcome)
        ordered = [(update.participant, outcomes[update.participant]) for update in posted]
        return Screening(accepted=[outcome for _, outcome in ordered if isinstance(outcome, ClientModel)],
                         rejected=[(who, outcome) for who, outcome in ordered if isinstance(outcome, str)],
                         posted=tuple(posted),
                         checked=tuple(update.participant for update in posted
                                       if update.participant in refused or update in fresh))

    def catch_up(self, round_number: int, replay: Callable[[int], object]) -> None:
        """Bring a stateful aggregator's state up to the round before ``round_number``: ``replay(earlier)``
        aggregates each round it has not taken in yet, in order (by :meth:`aggregate`, which counts it)."""
        if self.stateful:
            for earlier in range(self.applied_through + 1, round_number):
                replay(earlier)
        self.applied_through = round_number - 1

    def aggregate(self, round_number: int, clients: Sequence[ClientModel], base: Parameters) -> AggregationResult:
        """The round's aggregate from its counted updates (:func:`combine`), taken into the state."""
        result = combine(self.aggregator, clients, base)
        self.applied_through = round_number
        return result

    def aggregate_secure(self, round_number: int, base: Parameters, total: SecureSum) -> AggregationResult:
        """A secure round's aggregate from the survivors' sum (:func:`combine_secure`), taken into the state."""
        result = combine_secure(self.aggregator, base, total)
        self.applied_through = round_number
        return result

    def step(self, round_number: int, base: Parameters, board: UpdateBoard, store: UpdateStore) -> AggregationResult:
        """The round's aggregate from its well-formed updates."""
        return self.aggregate(round_number, self.screen(round_number, base, board, store).accepted, base)
