"""A study's config: what every party must agree on, as canonical JSON.

The coordinator writes it once, adds its bytes to the store and puts their
SHA-256 on chain (``createStudy``); hospitals and auditors fetch it by the
CID the chain names and refuse it unless its digest matches. Canonical means
sorted keys, no whitespace, ASCII only, so the same config always gives the
same bytes and digest in any process::

    {"aggregator": {"name": "fedavg", "params": {}},
     "auditors": ["0x..."], "dp": null | {"max_grad_norm": ..., "noise_multiplier": ..., ...},
     "format": "medshare-study/1",
     "model": {"kind": "logistic", "num_features": 30, "layout": "<hex>"},  # fl.models.ModelSpec.to_json
     "participants": ["0x...", ...],
     "round_seconds": 600,
     "decision_threshold": 0.3,  # present only when not 0.5: where a binary model's probability is positive
     "secure_aggregation": null | {"threshold": 3, "phase_seconds": 60, "fractional_bits": 24,
                                   "modulus_bits": 64, "value_bound": 1024.0, "max_total_weight": 1048576,
                                   "graph_degree": 8},  # graph_degree: present only when not 0
     "training": {"batch_size": 16, "epochs": 1, "learning_rate": 0.1, "mu": 0.0}}

``dp`` (local DP-SGD at each hospital) and ``distributed_dp`` (present only when set:
each hospital's clipped update plus its share of the noise, inside the secure sum; with a
``sample_rate``, one DP-SGD step a round on the hospitals' records together;
:class:`fl.privacy.DistributedDPConfig`) exclude each other; ``accountant`` is
present in either only when it is ``"pld"`` (absent: RDP), so every party
recomputes epsilons with the accountant the study names. :attr:`StudyConfig.threat_model`
says whom each protects against. A DP study publishes no record count: its
updates carry none on chain and its rounds average unweighted, so the epsilon
it reports is for add/remove-one-record adjacency at each hospital.

``compression`` (present only when set: ``{"top_k_ratio": r | null, "quantize_8bit": b}``,
:class:`fl.compression.CompressionConfig`) makes every update a compressed one
(:mod:`offchain.rounds.compression`); it excludes secure aggregation.

``participants`` are the hospitals of the study (the coordinator invites them
to each round, and the aggregate is encrypted for them); ``auditors`` may read
every update and aggregate and re-derive each round. With
``secure_aggregation`` every round runs :mod:`fl.secure_aggregation` through
the chain (:mod:`offchain.rounds.secure_board`): the coordinator learns only
the sum of the updates, which is then public, as is every model of the study.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eth_utils import is_address, to_checksum_address

from fl.aggregation import AggregationError, create_aggregator, sum_based_aggregators
from fl.client import LocalTrainingConfig, dp_round_parameters
from fl.evaluation import DEFAULT_THRESHOLD as DEFAULT_DECISION_THRESHOLD
from fl.evaluation import check_threshold
from fl.compression import CompressionConfig
from fl.data import BUNDLED_FEATURES
from fl.models import ModelSpec
from fl.privacy import DistributedDPConfig, DPParameters, DPSGDConfig, PrivacyBudget
from fl.secure_aggregation import MIN_CLIENTS as MIN_SURVIVORS
from fl.secure_aggregation import FixedPointCodec, SecureAggregationError, SessionParameters
from offchain.rounds.errors import StudyConfigError

FORMAT = "medshare-study/1"
DEFAULT_ROUND_SECONDS = 600
DEFAULT_PHASE_SECONDS = 60
DEFAULT_AGGREGATOR = "fedavg"
DEFAULT_ACCOUNTANT = "rdp"
# Phases a deadline must leave room for before the masked inputs are due: keys, shares, masked inputs.
_TIMED_PHASES = 3


@dataclass(frozen=True)
class SecureAggregationSettings:
    """A study's secure aggregation: the Shamir ``threshold`` t, the fixed-point ``codec`` every masked
    input is encoded with, ``phase_seconds``, how long the coordinator waits for the parties
    expected in a phase before it closes the phase without them (they are then dropouts), and
    ``graph_degree``: 0, every hospital shares with every other (Bonawitz et al.); an even k > 0, each
    shares with its k neighbours on a random graph drawn from the chain (SecAgg+, Bell et al.), and
    ``threshold`` applies to each neighbourhood of k + 1. SecAgg+ pays off past about 20 hospitals."""

    threshold: int
    phase_seconds: int = DEFAULT_PHASE_SECONDS
    codec: FixedPointCodec = FixedPointCodec()
    graph_degree: int = 0

    def __post_init__(self) -> None:
        for name in ("threshold", "phase_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StudyConfigError(f"secure_aggregation: {name} must be a positive int, got {value!r}")
        degree = self.graph_degree
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0 or degree % 2:
            raise StudyConfigError(f"secure_aggregation: graph_degree must be 0 (complete graph) or a positive "
                                   f"even int, got {degree!r}")

    def check_roster(self, participants: int) -> None:
        """StudyConfigError unless ``participants`` parties can run a session at this threshold
        (at least 3, ``t <= n``, ``t > n/2``: :meth:`fl.secure_aggregation.SessionParameters.check_roster_size`)."""
        try:
            self.session(bytes(8), 1).check_roster_size(participants)
        except SecureAggregationError as error:
            raise StudyConfigError(f"secure_aggregation: {error}") from None

    def session(self, session_id: bytes, vector_length: int, graph_seed: bytes = b"") -> SessionParameters:
        """One round's session parameters (its id, the length of the flattened model, the graph's seed)."""
        try:
            return SessionParameters(session_id, self.threshold, vector_length, self.codec, self.graph_degree,
                                     graph_seed)
        except ValueError as error:
            raise StudyConfigError(f"secure_aggregation: {error}") from None

    def to_json(self) -> dict[str, Any]:
        codec = self.codec
        return {"threshold": self.threshold, "phase_seconds": self.phase_seconds,
                "fractional_bits": codec.fractional_bits, "modulus_bits": codec.modulus_bits,
                "value_bound": float(codec.value_bound), "max_total_weight": codec.max_total_weight,
                **({"graph_degree": self.graph_degree} if self.graph_degree else {})}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> SecureAggregationSettings:
        fields = dict(document)
        codec_fields = {name: fields.pop(name) for name in ("fractional_bits", "modulus_bits", "value_bound",
                                                           "max_total_weight") if name in fields}
        try:
            codec = FixedPointCodec(**codec_fields)
        except (TypeError, ValueError) as error:
            raise StudyConfigError(f"secure_aggregation: {error}") from None
        return cls(codec=codec, **fields)


@dataclass(frozen=True)
class StudyConfig:
    """Model, aggregator, local training, DP, the study's hospitals and auditors, and the round length."""

    model: ModelSpec
    participants: tuple[str, ...]
    auditors: tuple[str, ...] = ()
    aggregator: str = DEFAULT_AGGREGATOR
    aggregator_params: Mapping[str, Any] = field(default_factory=dict)
    training: LocalTrainingConfig = LocalTrainingConfig()
    dp: DPSGDConfig | None = None
    round_seconds: int = DEFAULT_ROUND_SECONDS
    secure_aggregation: SecureAggregationSettings | None = None
    distributed_dp: DistributedDPConfig | None = None
    # Where a binary model's probability counts as positive, for the sensitivity and specificity each
    # hospital publishes (fl.evaluation); in the canonical JSON only when not the default 0.5.
    decision_threshold: float = DEFAULT_DECISION_THRESHOLD
    compression: CompressionConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "participants", _addresses(self.participants, "participants"))
        object.__setattr__(self, "auditors", _addresses(self.auditors, "auditors"))
        object.__setattr__(self, "aggregator_params", dict(self.aggregator_params))
        if not self.participants:
            raise StudyConfigError("a study needs at least one participant")
        if isinstance(self.round_seconds, bool) or not isinstance(self.round_seconds, int) or self.round_seconds < 1:
            raise StudyConfigError(f"round_seconds must be a positive int, got {self.round_seconds!r}")
        try:
            create_aggregator(self.aggregator, self.aggregator_params)
        except AggregationError as error:
            raise StudyConfigError(f"aggregator: {error}") from None
        secure = self.secure_aggregation
        if secure is not None:
            if self.aggregator not in sum_based_aggregators():
                raise StudyConfigError(
                    f"secure aggregation reveals only the sum of the updates, which aggregator {self.aggregator!r} "
                    f"cannot work from; use one of {', '.join(sum_based_aggregators())}")
            secure.check_roster(len(self.participants))
            if self.distributed_dp is not None and self.distributed_dp.min_survivors > secure.threshold:
                raise StudyConfigError(
                    f"distributed_dp: min_survivors {self.distributed_dp.min_survivors} is above the secure "
                    f"threshold {secure.threshold}: a sum of fewer survivors would carry too little noise")
            if _TIMED_PHASES * secure.phase_seconds > self.round_seconds:
                raise StudyConfigError(
                    f"secure_aggregation: {_TIMED_PHASES} phases of {secure.phase_seconds} s (keys, shares, masked "
                    f"inputs) do not fit in a round of {self.round_seconds} s: lower phase_seconds or raise "
                    "round_seconds")

        if self.distributed_dp is not None:
            if secure is None:
                raise StudyConfigError("distributed_dp adds each hospital's share of the noise inside the secure "
                                       "sum: it needs secure_aggregation")
            if self.dp is not None:
                raise StudyConfigError("a study takes local DP-SGD (dp) or distributed_dp, not both")
        _check_decision_threshold(self.decision_threshold)
        self._check_compression()

    @classmethod
    def from_options(cls, participants: Sequence[str], auditors: Sequence[str] = (), *, model: ModelSpec | None = None,
                     aggregator: str = DEFAULT_AGGREGATOR, aggregator_params: Mapping[str, Any] | None = None,
                     round_seconds: int | None = None, training: LocalTrainingConfig | None = None,
                     dp_epsilon: float | None = None, dp_delta: float | None = None, dp_rounds: int | None = None,
                     dp_accountant: str | None = None, distributed_dp: bool = False, secure: bool = False,
                     threshold: int | None = None, phase_seconds: int | None = None, graph_degree: int = 0,
                     decision_threshold: float | None = None, top_k: float | None = None,
                     int8: bool = False) -> StudyConfig:
        """The config a study's options describe (``medshare fl create``, ``fl run``, the benches); None
        is an option not given, which takes its default: the bundled table's logistic model, 600 s
        rounds, a secure threshold over half the hospitals (:func:`default_threshold`), the delta
        :data:`fl.privacy.DEFAULT_DELTA` and RDP accounting. ``dp_epsilon`` is each hospital's budget over
        ``dp_rounds`` rounds, DP-SGD calibrated to it (with ``distributed_dp``: noise shares inside the
        secure sum); ``graph_degree``: SecAgg+'s (:class:`SecureAggregationSettings`); ``top_k`` and
        ``int8`` compress every update. StudyConfigError for options that
        need another or contradict each other."""
        from fl.privacy import DEFAULT_DELTA

        check_dp_options(dp_epsilon, dp_delta, dp_accountant, distributed_dp, secure)
        if dp_epsilon is None and dp_rounds is not None:
            raise StudyConfigError("--dp-delta and --dp-rounds need --dp-epsilon")
        if dp_epsilon is not None and (dp_rounds is None or dp_rounds < 1):
            raise StudyConfigError("--dp-epsilon needs --dp-rounds N (N >= 1): the rounds the budget must last")
        if not secure and (threshold is not None or phase_seconds is not None or graph_degree):
            raise StudyConfigError("--threshold and --phase-seconds need --secure-aggregation")
        secure_aggregation = None
        if secure:
            timing = {} if phase_seconds is None else {"phase_seconds": phase_seconds}
            secure_aggregation = SecureAggregationSettings(
                default_threshold(len(participants)) if threshold is None else threshold, **timing,
                graph_degree=graph_degree)
        dp = distributed = None
        if dp_epsilon is not None:  # DP-SGD's own default training unless ``training`` is given
            from offchain.rounds.privacy import study_privacy

            training, dp, distributed = study_privacy(
                dp_epsilon, DEFAULT_DELTA if dp_delta is None else dp_delta, dp_rounds,
                accountant=dp_accountant or DEFAULT_ACCOUNTANT, training=training,
                distributed_survivors=secure_aggregation.threshold if distributed_dp else None)
        compression = None if top_k is None and not int8 else CompressionConfig(top_k, int8)
        return cls(model or ModelSpec("logistic", BUNDLED_FEATURES), tuple(participants), tuple(auditors), aggregator,
                   dict(aggregator_params or {}), training=training or LocalTrainingConfig(), dp=dp,
                   round_seconds=DEFAULT_ROUND_SECONDS if round_seconds is None else round_seconds,
                   secure_aggregation=secure_aggregation, distributed_dp=distributed, compression=compression,
                   decision_threshold=DEFAULT_DECISION_THRESHOLD if decision_threshold is None else decision_threshold)

    def default_quorum(self) -> int:
        """The updates a round must count unless the study says otherwise: every participant's; under
        secure aggregation as few as the protocol can unmask (dropouts are what it is for)."""
        if self.secure_aggregation is not None:
            return min(secure_quorum(self.secure_aggregation.threshold), len(self.participants))
        return len(self.participants)

    def _check_compression(self) -> None:
        if self.compression is None:
            return
        if not isinstance(self.compression, CompressionConfig):
            raise StudyConfigError(f"compression must be a CompressionConfig, got {self.compression!r}")
        if self.secure_aggregation is not None:
            raise StudyConfigError("compression sends each hospital's update sparse or quantized, which a masked "
                                   "input of secure aggregation cannot be: choose one")

    def to_json(self) -> dict[str, Any]:
        distributed = {} if self.distributed_dp is None else {"distributed_dp": _distributed_json(self.distributed_dp)}
        threshold = {} if self.decision_threshold == DEFAULT_DECISION_THRESHOLD else \
            {"decision_threshold": self.decision_threshold}
        compression = {} if self.compression is None else {"compression": self.compression.to_json()}
        return {
            **distributed,
            **threshold,
            **compression,
            "format": FORMAT,
            "model": self.model.to_json(),
            "aggregator": {"name": self.aggregator, "params": dict(self.aggregator_params)},
            "training": asdict(self.training),
            "dp": _dp_json(self.dp),
            "secure_aggregation": None if self.secure_aggregation is None else self.secure_aggregation.to_json(),
            "participants": list(self.participants),
            "auditors": list(self.auditors),
            "round_seconds": self.round_seconds,
        }

    def with_model_layout(self, parameters: Mapping[str, Any]) -> StudyConfig:
        """This config committed to the parameter layout of ``parameters`` (the genesis model's): every
        node then refuses to train a model of another layout, and the verifier an aggregate."""
        from dataclasses import replace

        from fl.artifacts import layout_digest
        from fl.models import ModelLayoutMismatch

        try:
            self.model.check_layout(parameters)
        except ModelLayoutMismatch as error:
            raise StudyConfigError(f"the genesis model does not fit the config: {error}") from None
        return replace(self, model=replace(self.model, layout=layout_digest(parameters)))

    def canonical_bytes(self) -> bytes:
        """The bytes that go in the store, whose SHA-256 goes on chain."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode()

    def digest(self) -> bytes:
        return hashlib.sha256(self.canonical_bytes()).digest()

    @property
    def privacy_budget(self) -> PrivacyBudget | None:
        """Each hospital's (epsilon, delta) budget for the whole study, which goes on chain; None
        when the study sets none (no DP, or DP without a budget)."""
        private = self.dp or self.distributed_dp
        if private is None or private.epsilon_budget is None:
            return None
        return PrivacyBudget(private.epsilon_budget, private.delta, private.accountant)

    @property
    def private(self) -> bool:
        """Whether the study trains under DP (local DP-SGD or distributed): then no record count is
        published, and its rounds average unweighted."""
        return self.dp is not None or self.distributed_dp is not None

    @property
    def dp_accountant(self) -> str:
        private = self.dp or self.distributed_dp
        return "rdp" if private is None else private.accountant

    @property
    def dp_round_release(self) -> DPParameters | None:
        """What one round of the study releases about a hospital, as its update must declare it."""
        if self.distributed_dp is not None:
            return self.distributed_dp.round_release
        return None if self.dp is None else dp_round_parameters(self.training, self.dp)

    @property
    def threat_model(self) -> str:
        """Whom the study's DP protects each hospital against."""
        if self.dp is not None:
            return ("local DP-SGD: each update is private on its own, against the coordinator, the public and "
                    "colluding hospitals alike")
        if self.distributed_dp is not None:
            return ("distributed DP: only the secure sum is noised enough, which protects against the coordinator "
                    "and the public, not against hospitals colluding with the coordinator (they can subtract their "
                    "own noise shares)")
        return "no DP: models and updates carry no formal guarantee"

    @property
    def members(self) -> tuple[str, ...]:
        """Participants and auditors (the coordinator comes from the chain), each once."""
        return tuple(dict.fromkeys((*self.participants, *self.auditors)))

    @classmethod
    def from_bytes(cls, data: bytes, expected_digest: bytes | None = None) -> StudyConfig:
        """Parse canonical bytes; with ``expected_digest`` (from the chain), refuse any other bytes."""
        if expected_digest is not None and hashlib.sha256(data).digest() != bytes(expected_digest):
            raise StudyConfigError("the study config's bytes do not hash to the digest on chain")
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise StudyConfigError(f"unknown study config format {document.get('format')!r} (this build reads {FORMAT})")
            dp = document["dp"]
            secure = document["secure_aggregation"]
            distributed = document.get("distributed_dp")
            compression = document.get("compression")
            config = cls(
                model=ModelSpec.from_json(document["model"]),
                participants=tuple(document["participants"]),
                auditors=tuple(document["auditors"]),
                aggregator=document["aggregator"]["name"],
                aggregator_params=document["aggregator"]["params"],
                training=LocalTrainingConfig(**document["training"]),
                dp=DPSGDConfig(**dp) if dp is not None else None,
                round_seconds=document["round_seconds"],
                secure_aggregation=SecureAggregationSettings.from_json(secure) if secure is not None else None,
                distributed_dp=DistributedDPConfig(**distributed) if distributed is not None else None,
                decision_threshold=document.get("decision_threshold", DEFAULT_DECISION_THRESHOLD),
                compression=CompressionConfig.from_json(compression) if "compression" in document else None,
            )
        except StudyConfigError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise StudyConfigError(f"malformed study config: {error!r}") from None
        if config.canonical_bytes() != bytes(data):
            raise StudyConfigError("the study config is not in canonical form")
        return config


def _dp_json(dp: DPSGDConfig | None) -> dict[str, Any] | None:
    """The DP settings as the config holds them; the accountant only when not RDP (absent means RDP, as
    in configs written before PLD), so that every party recomputes epsilons with the one it names."""
    if dp is None:
        return None
    document = asdict(dp)
    if document["accountant"] == "rdp":
        del document["accountant"]
    return document


def _distributed_json(distributed: DistributedDPConfig) -> dict[str, Any]:
    """Distributed DP as the config holds it; the sample rate only when set (record level), as in configs
    written before record-level distributed DP."""
    document = asdict(distributed)
    if document["sample_rate"] is None:
        del document["sample_rate"]
    return document


def _addresses(values: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise StudyConfigError(f"{what} must be a list of addresses")
    checked = []
    for value in values:
        if not isinstance(value, str) or not is_address(value):
            raise StudyConfigError(f"{what}: {value!r} is not an Ethereum address")
        checked.append(to_checksum_address(value))
    if len(set(checked)) != len(checked):
        raise StudyConfigError(f"{what} lists an address twice")
    return tuple(checked)


def _check_decision_threshold(threshold: Any) -> None:
    try:
        check_threshold(threshold)
    except ValueError as error:
        raise StudyConfigError(f"decision_threshold: {error}") from None


def default_threshold(hospitals: int) -> int:
    """Secure aggregation's t for ``hospitals``: the smallest over half of them (so no two disjoint
    groups can each unmask), and at least 2."""
    return max(2, hospitals // 2 + 1)


def secure_quorum(threshold: int) -> int:
    """A secure study's quorum: the fewest survivors whose sum may be revealed, max(t, 3)."""
    return max(threshold, MIN_SURVIVORS)


def check_dp_options(dp_epsilon, dp_delta, dp_accountant, distributed_dp: bool, secure: bool) -> None:
    """StudyConfigError for a DP option that needs another (`fl create`, `fl run`), before anything is sent."""
    if dp_epsilon is None:
        for name, given in (("--dp-delta", dp_delta is not None), ("--dp-accountant", dp_accountant is not None),
                            ("--distributed-dp", distributed_dp)):
            if given:
                raise StudyConfigError(f"{name} needs --dp-epsilon")
    if distributed_dp and not secure:
        raise StudyConfigError("--distributed-dp adds each hospital's share of the noise inside the secure sum: "
                               "it needs --secure-aggregation")
