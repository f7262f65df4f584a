"""Differential privacy for federated rounds, accounted with opacus's RDP accountant or dp-accounting's PLD.

Two levels:

* record level (``DPSGDConfig``): each hospital runs DP-SGD (per-sample
  clipping and Gaussian noise) so that its update protects every patient
  record; a ``PrivacyLedger`` per hospital composes the cost of its rounds,
  since every round touches the same records;
* client level (``ClientLevelDP``): hospitals are Poisson-sampled each round,
  each sampled hospital's whole update is clipped and the server adds
  Gaussian noise to the aggregate, so that the model protects each
  hospital's participation; worth it for consortia with many members, where
  the sampling rate of clients per round is small.

Randomness that protects anyone (DP noise, record and hospital sampling)
comes from a cryptographic generator, :class:`NoiseSource`: ChaCha20's
keystream (``cryptography``) under a fresh 256-bit key from ``os.urandom`` for
every use, never torch's Mersenne Twister (whose state a few outputs reveal).
Gaussian noise is drawn as opacus's ``secure_mode`` draws it against the
floating-point attack of Jin et al. (arXiv 2112.05307): the sum of four draws
of the same deviation, halved (opacus's secure mode itself needs torchcsprng,
which has no build for this torch). A seed may fix data splits and model
initialisation only. Tests that need reproducible noise opt in with
``SeededNoise`` (the same ChaCha20, keyed from the seed); whatever it produces
is marked ``noise_seeded`` and reports no epsilon, since whoever knows the seed
can regenerate the noise and subtract it.

``epsilon_of`` is the accountant other parties use: from the DP parameters an
update declares it computes the epsilon deterministically (opacus's RDP
analysis), so a hospital node can compute its spend after an update and a
verifier can recompute a declared epsilon.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fl.aggregation import ClientModel
from fl.opacus_import import import_opacus

DEFAULT_DELTA = 1e-5
# The accountants a study may choose: opacus's RDP, or the privacy loss distribution (PLD) of Google's
# dp-accounting, tighter for the same releases. Absent from a config means RDP.
ACCOUNTANTS = ("rdp", "pld")
# PLD's discretisation of the privacy loss (dp-accounting's default is 1e-4): pessimistic, so finer is tighter.
PLD_DISCRETIZATION = 1e-4


class PrivacyError(RuntimeError):
    """A privacy rule refuses the operation (budget, declared epsilon...)."""


class PrivacyBudgetExceeded(PrivacyError):
    """Training one more round would spend more epsilon than the budget allows."""


class DeclaredEpsilonMismatch(PrivacyError):
    """An update declares an epsilon that its declared DP parameters do not give."""


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any labels (stable across runs and processes, unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def os_generator() -> torch.Generator:
    """A torch generator seeded with 64 fresh bits from the OS, for randomness that protects nobody
    (the batch order of training without DP); DP noise and sampling come from :class:`NoiseSource`."""
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "big"))


# Gaussian draws summed per noise value (opacus's secure mode: 2n draws with n = 2, the sum halved).
SECURE_GAUSSIAN_DRAWS = 4


class NoiseSource:
    """DP noise and sampling from ChaCha20's keystream under a 256-bit key.

    Uniforms take 53 bits of keystream each; Gaussians come from Box-Muller,
    each value the sum of :data:`SECURE_GAUSSIAN_DRAWS` draws scaled back to the
    asked deviation, so that no single floating-point draw (whose low bits
    the attack of arXiv 2112.05307 reads) is released.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a NoiseSource key is 32 bytes")
        self._stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    @classmethod
    def fresh(cls) -> NoiseSource:
        """A source keyed from the OS: nobody can regenerate what it draws."""
        return cls(os.urandom(32))

    def _words(self, count: int) -> np.ndarray:
        return np.frombuffer(self._stream.update(bytes(8 * count)), dtype="<u8")

    def uniform(self, count: int) -> torch.Tensor:
        """``count`` float64 uniforms in (0, 1), multiples of 2^-53 (never 0, so their log is finite)."""
        units = (self._words(count) >> np.uint64(11)).astype(np.float64) + 1.0
        return torch.from_numpy(units * 2.0**-53)

    def bernoulli(self, count: int, probability: float) -> torch.Tensor:
        """``count`` independent draws, each True with ``probability`` (Poisson sampling)."""
        return self.uniform(count) < probability

    def gaussian(self, shape: Sequence[int] | torch.Size, std: float,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Gaussian noise of deviation ``std`` in ``shape``, with the secure-mode sum of draws."""
        count = math.prod(shape)
        draws = SECURE_GAUSSIAN_DRAWS * count
        pairs = (draws + 1) // 2
        radius = torch.sqrt(-2.0 * torch.log(self.uniform(pairs)))
        angle = (2.0 * math.pi) * self.uniform(pairs)
        normals = torch.cat((radius * torch.cos(angle), radius * torch.sin(angle)))[:draws]
        summed = normals.view(SECURE_GAUSSIAN_DRAWS, count).sum(0) / math.sqrt(SECURE_GAUSSIAN_DRAWS)
        return (std * summed).view(*shape).to(dtype)


@dataclass(frozen=True)
class SeededNoise:
    """Reproducible DP noise and sampling, for tests only (an explicit opt-in).

    Whoever knows ``seed`` can regenerate the noise and subtract it, so
    everything produced with it is marked ``noise_seeded`` and reports no
    epsilon.
    """

    seed: int

    def generator(self, *labels: object) -> NoiseSource:
        return NoiseSource(hashlib.sha256("/".join(map(str, ("dp-noise", self.seed, *labels))).encode()).digest())


def noise_generator(seeded: SeededNoise | None, *labels: object) -> NoiseSource:
    """The source of DP noise and sampling: fresh from the OS, unless a test opted into ``seeded``."""
    return NoiseSource.fresh() if seeded is None else seeded.generator(*labels)


@functools.cache
def crypto_noise_dp_optimizer() -> type:
    """:class:`CryptoNoiseDPOptimizer`, built at first use: opacus is imported only where DP-SGD runs."""
    opacus_optimizer = import_opacus("opacus.optimizers.optimizer")

    class CryptoNoiseDPOptimizer(opacus_optimizer.DPOptimizer):
        """opacus's DP-SGD optimizer with its Gaussian noise drawn from a :class:`NoiseSource`."""

        def __init__(self, *args, noise: NoiseSource, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.noise = noise

        def add_noise(self) -> None:
            std = self.noise_multiplier * self.max_grad_norm
            for parameter in self.params:
                opacus_optimizer._check_processed_flag(parameter.summed_grad)
                noise = self.noise.gaussian(parameter.summed_grad.shape, std, parameter.summed_grad.dtype)
                parameter.grad = (parameter.summed_grad + noise).view_as(parameter)
                opacus_optimizer._mark_as_processed(parameter.summed_grad)

    CryptoNoiseDPOptimizer.__module__, CryptoNoiseDPOptimizer.__qualname__ = __name__, "CryptoNoiseDPOptimizer"
    return CryptoNoiseDPOptimizer


def __getattr__(name: str):
    if name == "CryptoNoiseDPOptimizer":
        return crypto_noise_dp_optimizer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rdp_analysis():
    """opacus's RDP analysis and RDPAccountant's default orders (imported at first use)."""
    accountants = import_opacus("opacus.accountants")
    return import_opacus("opacus.accountants.analysis.rdp"), accountants.RDPAccountant.DEFAULT_ALPHAS


@dataclass(frozen=True)
class PrivacySpent:
    """(epsilon, delta) spent; ``epsilon`` is None when the noise was seeded (no guarantee holds)."""

    epsilon: float | None
    delta: float
    noise_seeded: bool = False


@dataclass(frozen=True)
class RoundPrivacy:
    """The cost of one round alone and the total after it (composition over rounds).

    Both epsilons are None when the noise was seeded.
    """

    round_number: int
    round_epsilon: float | None
    total_epsilon: float | None
    delta: float
    noise_seeded: bool = False


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {accountant!r}")


def _check_budget(epsilon_budget: float | None) -> None:
    if epsilon_budget is not None and not (epsilon_budget > 0.0 and math.isfinite(epsilon_budget)):
        raise ValueError(f"epsilon_budget must be a positive finite number, got {epsilon_budget}")


def _check_noise_and_norm(noise_multiplier: float, norm: float, norm_name: str) -> None:
    if not (noise_multiplier > 0.0 and math.isfinite(noise_multiplier)):
        raise ValueError(f"noise_multiplier must be a positive finite number, got {noise_multiplier}")
    if not (norm > 0.0 and math.isfinite(norm)):
        raise ValueError(f"{norm_name} must be a positive finite number, got {norm}")


@dataclass(frozen=True)
class DPSGDConfig:
    """Record-level DP-SGD at one hospital.

    ``max_grad_norm`` bounds each record's gradient; ``noise_multiplier`` is the
    Gaussian noise's standard deviation in units of that bound; ``sample_rate``
    is each record's Poisson sampling probability per step. A hospital with
    an ``epsilon_budget`` refuses any round that would take its total past it.
    """

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float = 0.25
    delta: float = DEFAULT_DELTA
    epsilon_budget: float | None = None
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        _check_noise_and_norm(self.noise_multiplier, self.max_grad_norm, "max_grad_norm")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        _check_delta(self.delta)
        _check_budget(self.epsilon_budget)
        _check_accountant(self.accountant)


def calibrate_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """The smallest noise multiplier that keeps ``steps`` steps within ``target_epsilon`` (by ``accountant``)."""
    _check_budget(target_epsilon)
    _check_delta(delta)
    _check_accountant(accountant)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if accountant == "rdp":
        return float(
            import_opacus("opacus.accountants.utils").get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant="rdp",
            )
        )
    # PLD: bisect on sigma (epsilon falls as sigma grows), to opacus's precision of 0.01.
    low, high = 0.1, 1.0
    spend = lambda sigma: epsilon_of([DPParameters(sigma, sample_rate, steps, 1.0)], delta, "pld")  # noqa: E731
    while spend(high) > target_epsilon:
        low, high = high, 2 * high
    while high - low > 0.01:
        middle = (low + high) / 2
        low, high = (middle, high) if spend(middle) > target_epsilon else (low, middle)
    return high


@functools.lru_cache(maxsize=64)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """RDP of one sampled-Gaussian step at RDPAccountant's default orders.

    RDP composes additively, so ``k`` steps cost ``k`` times this.
    Cached because opacus evaluates its fractional orders slowly (about half a
    second per call) and a run asks again with the same settings every round.
    """
    rdp_analysis, alphas = _rdp_analysis()
    return np.asarray(
        rdp_analysis.compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=alphas
        )
    )


@dataclass(frozen=True)
class DPParameters:
    """What one DP release (a hospital's update, or a server's noised round) declares it was made with.

    ``steps`` sampled-Gaussian steps, each sampling every record (or
    hospital) with probability ``sample_rate`` and adding Gaussian noise of
    standard deviation ``noise_multiplier * clipping_norm``. The clipping norm
    does not change epsilon (the noise scales with it) but belongs to the
    declaration: noise below it would void the guarantee.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    clipping_norm: float

    def __post_init__(self) -> None:
        _check_noise_and_norm(self.noise_multiplier, self.clipping_norm, "clipping_norm")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {self.steps!r}")


def _history_rdp(history: Sequence[DPParameters]) -> np.ndarray:
    total = np.zeros(len(_rdp_analysis()[1]))
    for release in history:
        total = total + release.steps * _rdp_per_step(float(release.noise_multiplier), float(release.sample_rate))
    return total


def _epsilon_of_rdp(rdp: np.ndarray, delta: float) -> float:
    if not rdp.any():
        return 0.0
    rdp_analysis, alphas = _rdp_analysis()
    epsilon, _ = rdp_analysis.get_privacy_spent(orders=alphas, rdp=rdp, delta=delta)
    return float(epsilon)


def epsilon_of(history: Sequence[DPParameters], delta: float, accountant: str = "rdp") -> float:
    """The epsilon at ``delta`` of all releases in ``history`` together, by ``accountant``.

    A pure function of its arguments: the same declarations give the same
    epsilon on every machine (with the pinned libraries), so a verifier can
    recompute a declared one. ``rdp`` equals ``opacus.accountants.RDPAccountant``
    with that history; ``pld`` is ``dp_accounting.pld.PLDAccountant`` under
    add/remove-one adjacency.
    """
    _check_delta(delta)
    _check_accountant(accountant)
    if accountant == "pld":
        return _epsilon_of_pld(tuple(history), delta)
    return _epsilon_of_rdp(_history_rdp(history), delta)


@functools.lru_cache(maxsize=256)
def _epsilon_of_pld(history: tuple[DPParameters, ...], delta: float) -> float:
    from dp_accounting import NeighboringRelation, dp_event, pld

    if not any(release.steps for release in history):
        return 0.0
    accountant = pld.PLDAccountant(NeighboringRelation.ADD_OR_REMOVE_ONE,
                                   value_discretization_interval=PLD_DISCRETIZATION)
    for release in history:
        if release.steps:
            event = dp_event.PoissonSampledDpEvent(release.sample_rate, dp_event.GaussianDpEvent(release.noise_multiplier))
            accountant.compose(event, release.steps)
    return float(accountant.get_epsilon(delta))


def check_declared_epsilon(
    history: Sequence[DPParameters], delta: float, declared: float, rel_tol: float = 1e-9
) -> None:
    """Raise ``DeclaredEpsilonMismatch`` unless ``declared`` is the epsilon of ``history`` at ``delta``."""
    actual = epsilon_of(history, delta)
    if not (math.isfinite(declared) and math.isclose(declared, actual, rel_tol=rel_tol, abs_tol=1e-12)):
        raise DeclaredEpsilonMismatch(
            f"declared epsilon {declared!r} differs from {actual!r}, the epsilon of the declared DP parameters "
            f"at delta {delta:g}"
        )


@dataclass(frozen=True)
class PrivacyBudget:
    """A party's (epsilon, delta) budget over a whole study."""

    epsilon: float
    delta: float = DEFAULT_DELTA
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        _check_budget(self.epsilon)
        _check_delta(self.delta)
        _check_accountant(self.accountant)

    def check(self, history: Sequence[DPParameters], update: DPParameters) -> float:
        """The epsilon spent after ``update``; ``PrivacyBudgetExceeded`` if that passes the budget."""
        spent = epsilon_of(history, self.delta, self.accountant)
        after = epsilon_of([*history, update], self.delta, self.accountant)
        if after > self.epsilon:
            raise PrivacyBudgetExceeded(
                f"this update would bring epsilon from {spent:.3f} to {after:.3f} "
                f"(delta {self.delta:g}), over the budget of {self.epsilon:g}"
            )
        return after


@dataclass
class PrivacyLedger:
    """Composition of sampled-Gaussian releases about one fixed set of records (opacus RDP).

    A ledger of ``noise_seeded`` releases still enforces the budget but
    reports no epsilon.
    """

    delta: float = DEFAULT_DELTA
    epsilon_budget: float | None = None
    noise_seeded: bool = False
    rounds: list[RoundPrivacy] = field(default_factory=list)
    history: list[DPParameters] = field(default_factory=list)
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        _check_delta(self.delta)
        _check_budget(self.epsilon_budget)
        _check_accountant(self.accountant)
        if not all(isinstance(release, DPParameters) for release in self.history):
            raise ValueError("a privacy history holds DPParameters only")

    def _reported(self, epsilon: float) -> float | None:
        return None if self.noise_seeded else epsilon

    def projected_total(self, release: DPParameters) -> float:
        """The total epsilon if ``release`` were added now."""
        return epsilon_of([*self.history, release], self.delta, self.accountant)

    def ensure_affordable(self, release: DPParameters) -> None:
        """Raise ``PrivacyBudgetExceeded`` if ``release`` would overspend the budget."""
        if self.epsilon_budget is not None:
            PrivacyBudget(self.epsilon_budget, self.delta, self.accountant).check(self.history, release)

    def record(self, round_number: int, release: DPParameters) -> RoundPrivacy:
        """Account one round's release."""
        self.history.append(release)
        cost = RoundPrivacy(
            round_number=round_number,
            round_epsilon=self._reported(epsilon_of([release], self.delta, self.accountant)),
            total_epsilon=self._reported(epsilon_of(self.history, self.delta, self.accountant)),
            delta=self.delta,
            noise_seeded=self.noise_seeded,
        )
        self.rounds.append(cost)
        return cost

    @property
    def total(self) -> PrivacySpent:
        """(epsilon, delta) spent over all recorded rounds together."""
        return PrivacySpent(
            epsilon=self._reported(epsilon_of(self.history, self.delta, self.accountant)),
            delta=self.delta,
            noise_seeded=self.noise_seeded,
        )


@dataclass(frozen=True)
class DistributedDPConfig:
    """Distributed DP under secure aggregation, at client level (each hospital's whole update).

    Each hospital clips its whole update (``trained - base``, L2 over all
    parameters) to ``clip_norm`` and adds its share of the Gaussian noise
    before masking it, so that only the secure sum carries noise, and enough
    of it: every surviving set has at least ``min_survivors`` hospitals (the
    protocol unmasks no fewer), and each share has deviation
    ``noise_multiplier * clip_norm / sqrt(min_survivors)``, so the sum carries
    at least deviation ``noise_multiplier * clip_norm`` whichever hospitals
    dropped: the Gaussian mechanism on one hospital's contribution that the
    accountant counts. Every hospital takes part in every round: one round
    releases one unsampled Gaussian step (``sample_rate`` 1).

    Threat model: the coordinator and the public see only the noised sum;
    hospitals that collude with the coordinator can subtract their own shares
    and leave the others with less noise than the accountant counts. Local DP-SGD (:class:`DPSGDConfig`) protects each hospital against
    everyone, colluders included, at the price of the full noise at each one.
    """

    clip_norm: float
    noise_multiplier: float
    min_survivors: int
    delta: float = DEFAULT_DELTA
    epsilon_budget: float | None = None
    accountant: str = "rdp"
    sample_rate: float | None = None

    def __post_init__(self) -> None:
        _check_noise_and_norm(self.noise_multiplier, self.clip_norm, "clip_norm")
        if isinstance(self.min_survivors, bool) or not isinstance(self.min_survivors, int) or self.min_survivors < 2:
            raise ValueError(f"min_survivors must be an integer of at least 2, got {self.min_survivors!r}")
        _check_delta(self.delta)
        _check_budget(self.epsilon_budget)
        _check_accountant(self.accountant)
        if self.sample_rate is not None and not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")

    @property
    def record_level(self) -> bool:
        """With a ``sample_rate``: distributed DP-SGD, each round one step of it (FedSGD). Each hospital
        Poisson-samples its records at ``sample_rate``, clips each record's gradient to ``clip_norm`` and
        adds its noise share to their sum; the secure sum is then one DP-SGD step on the union of the
        hospitals' records, with at least the full noise, accounted per record (as local DP-SGD is, with
        a sample of the whole consortium's records against the noise instead of one hospital's)."""
        return self.sample_rate is not None

    @property
    def round_release(self) -> DPParameters:
        """What one round releases about any hospital: one Gaussian step on its clipped update (client
        level), or about any record: one sampled-Gaussian step on its clipped gradient (record level)."""
        return DPParameters(self.noise_multiplier, 1.0 if self.sample_rate is None else self.sample_rate, 1,
                            self.clip_norm)

    @property
    def share_std(self) -> float:
        """The deviation of the noise each hospital adds to its own update."""
        return self.noise_multiplier * self.clip_norm / math.sqrt(self.min_survivors)

    def privatize(self, update: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
        """``update`` (flat, float64) clipped to ``clip_norm`` plus this hospital's share of the noise
        (client level; at record level the update already holds its share: :func:`fl.client.distributed_dp_step`)."""
        if self.record_level:
            return update.double()
        norm = float(torch.linalg.vector_norm(update.double()))
        scale = min(1.0, self.clip_norm / norm) if norm > 0 else 1.0
        return update.double() * scale + noise.gaussian(update.shape, self.share_std)


def calibrate_distributed_dp(epsilon: float, delta: float, rounds: int, clip_norm: float, min_survivors: int,
                             accountant: str = "rdp", sample_rate: float | None = None) -> DistributedDPConfig:
    """Distributed DP whose ``rounds`` rounds spend at most ``epsilon`` at ``delta``, with that budget
    (record level, one DP-SGD step a round, with a ``sample_rate``; client level without)."""
    noise = calibrate_noise_multiplier(epsilon, delta, 1.0 if sample_rate is None else sample_rate, rounds, accountant)
    # Rounded up to whole billionths, as the chain declares it (never less noise than calibrated).
    noise = math.ceil(noise * 1e9) / 1e9
    return DistributedDPConfig(clip_norm, noise, min_survivors, delta, epsilon, accountant, sample_rate)


@dataclass(frozen=True)
class ClientLevelDPConfig:
    """Client-level DP (DP-FedAvg, McMahan et al. 2018).

    Each round every one of the ``population`` hospitals takes part
    independently with probability ``clients_per_round / population``
    (Poisson sampling: the number taking part varies, ``clients_per_round`` is
    its expectation), which is the sampling the accountant's amplification
    assumes. ``clip_norm`` bounds each hospital's whole update (L2 over all
    parameters).
    """

    clip_norm: float
    noise_multiplier: float
    clients_per_round: int
    population: int
    delta: float = DEFAULT_DELTA
    epsilon_budget: float | None = None

    def __post_init__(self) -> None:
        _check_noise_and_norm(self.noise_multiplier, self.clip_norm, "clip_norm")
        if not 1 <= self.clients_per_round <= self.population:
            raise ValueError(
                f"clients_per_round must be between 1 and population ({self.population}), "
                f"got {self.clients_per_round}"
            )
        _check_delta(self.delta)
        _check_budget(self.epsilon_budget)

    @property
    def sample_rate(self) -> float:
        return self.clients_per_round / self.population

    @property
    def round_release(self) -> DPParameters:
        """What one round releases about any hospital: one sampled-Gaussian step."""
        return DPParameters(self.noise_multiplier, self.sample_rate, 1, self.clip_norm)


def update_norm(
    parameters: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
) -> float:
    """L2 norm of ``parameters - reference`` over all tensors together."""
    squares = sum(
        float(torch.sum((parameters[name].double() - reference[name].double()) ** 2))
        for name in reference
    )
    return math.sqrt(squares)


class ClientLevelDP:
    """Samples hospitals, clips whole updates and noises their sum; keeps the ledger over rounds.

    Sampling and noise come from the OS unless a test opts into
    ``seeded_noise``; the ledger then reports no epsilon.
    """

    def __init__(self, config: ClientLevelDPConfig, seeded_noise: SeededNoise | None = None) -> None:
        self.config = config
        self.seeded_noise = seeded_noise
        self.ledger = PrivacyLedger(
            delta=config.delta, epsilon_budget=config.epsilon_budget, noise_seeded=seeded_noise is not None
        )

    def sample(self, hospitals: Sequence[str], round_number: int) -> list[str]:
        """This round's participants: each hospital independently with probability ``sample_rate``."""
        if len(hospitals) != self.config.population:
            raise ValueError(
                f"client-level DP is configured for a population of {self.config.population}, "
                f"but there are {len(hospitals)} hospitals"
            )
        drawn = noise_generator(self.seeded_noise, "participants", round_number).bernoulli(
            len(hospitals), self.config.sample_rate)
        return [hospital for hospital, taken in zip(hospitals, drawn.tolist()) if taken]

    def clip(
        self, global_parameters: Mapping[str, torch.Tensor], client_model: ClientModel
    ) -> ClientModel:
        """The client's model with its update scaled down to at most ``clip_norm``."""
        norm = update_norm(client_model.parameters, global_parameters)
        scale = min(1.0, self.config.clip_norm / norm) if norm > 0 else 1.0
        clipped = {
            name: global_parameters[name] + scale * (client_model.parameters[name] - global_parameters[name])
            for name in global_parameters
        }
        return ClientModel(
            client_id=client_model.client_id,
            parameters=clipped,
            data_samples=client_model.data_samples,
            training_loss=client_model.training_loss,
            training_accuracy=client_model.training_accuracy,
        )

    def aggregate(
        self,
        round_number: int,
        global_parameters: Mapping[str, torch.Tensor],
        client_models: Sequence[ClientModel],
    ) -> dict[str, torch.Tensor]:
        """Global model plus (sum of clipped updates + Gaussian noise of std ``noise * clip``) / ``m``.

        ``m`` is the expected ``clients_per_round``, fixed whoever was drawn:
        dividing by the drawn count would leak it, and weighting by sample
        counts would let one hospital count more than ``clip_norm / m``. A
        round where nobody was drawn still adds noise and is still accounted.
        """
        ids = [model.client_id for model in client_models]
        if len(set(ids)) != len(ids) or len(ids) > self.config.population:
            raise ValueError(f"client models must come from distinct hospitals of the population, got {ids}")
        release = self.config.round_release
        self.ledger.ensure_affordable(release)
        generator = noise_generator(self.seeded_noise, "client-level", round_number)
        expected = self.config.clients_per_round
        std = self.config.noise_multiplier * self.config.clip_norm
        clipped = [self.clip(global_parameters, model) for model in client_models]
        noisy = {}
        for name, tensor in global_parameters.items():
            total = torch.zeros(tensor.shape, dtype=torch.float64)
            for model in clipped:
                total += model.parameters[name].double() - tensor.double()
            total += generator.gaussian(tensor.shape, std)
            noisy[name] = (tensor.double() + total / expected).to(tensor.dtype)
        self.ledger.record(round_number, release)
        return noisy
