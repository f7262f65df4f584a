"""Differential privacy for federated rounds, accounted with opacus's RDP accountant.

Two levels:

* record level (``DPSGDConfig``): each hospital runs DP-SGD (per-sample
  clipping and Gaussian noise) so that its update protects every patient
  record; a ``PrivacyLedger`` per hospital composes the cost of its rounds,
  since every round touches the same records;
* client level (``ClientLevelDP``): each hospital's whole update is clipped and
  the server adds Gaussian noise to the aggregate, so that the model protects
  each hospital's participation; worth it for consortia with many members,
  where the sampling rate of clients per round is small.
"""
from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from fl.aggregation import ClientModel, create_aggregator

DEFAULT_DELTA = 1e-5


class PrivacyBudgetExceeded(RuntimeError):
    """Training one more round would spend more epsilon than the budget allows."""


@dataclass(frozen=True)
class PrivacySpent:
    epsilon: float
    delta: float


@dataclass(frozen=True)
class RoundPrivacy:
    """The cost of one round alone and the total after it (composition over rounds)."""

    round_number: int
    round_epsilon: float
    total_epsilon: float
    delta: float


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")


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

    def __post_init__(self) -> None:
        _check_noise_and_norm(self.noise_multiplier, self.max_grad_norm, "max_grad_norm")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        _check_delta(self.delta)
        _check_budget(self.epsilon_budget)


def calibrate_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, steps: int
) -> float:
    """The smallest noise multiplier (RDP accounting) that keeps ``steps`` steps within ``target_epsilon``."""
    _check_budget(target_epsilon)
    _check_delta(delta)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return float(
        get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant="rdp",
        )
    )


@functools.lru_cache(maxsize=64)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """RDP of one sampled-Gaussian step at RDPAccountant's default orders.

    RDP composes additively, so a round of ``k`` steps costs ``k`` times this.
    Cached because opacus evaluates its fractional orders slowly (about half a
    second per call) and a run asks again with the same settings every round.
    """
    return np.asarray(
        rdp_analysis.compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS
        )
    )


@dataclass
class PrivacyLedger:
    """Composition of sampled-Gaussian releases about one fixed set of records (opacus RDP)."""

    delta: float = DEFAULT_DELTA
    epsilon_budget: float | None = None
    rounds: list[RoundPrivacy] = field(default_factory=list)
    _rdp: np.ndarray = field(default_factory=lambda: np.zeros(len(RDPAccountant.DEFAULT_ALPHAS)), repr=False)

    def __post_init__(self) -> None:
        _check_delta(self.delta)
        _check_budget(self.epsilon_budget)

    def _epsilon(self, rdp: np.ndarray) -> float:
        if not rdp.any():
            return 0.0
        epsilon, _ = rdp_analysis.get_privacy_spent(
            orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=self.delta
        )
        return float(epsilon)

    @staticmethod
    def _round_rdp(noise_multiplier: float, sample_rate: float, steps: int) -> np.ndarray:
        if steps < 0:
            raise ValueError(f"steps must be non-negative, got {steps}")
        return steps * _rdp_per_step(float(noise_multiplier), float(sample_rate))

    def projected_total(self, noise_multiplier: float, sample_rate: float, steps: int) -> float:
        """The total epsilon if a round of ``steps`` steps were added now."""
        return self._epsilon(self._rdp + self._round_rdp(noise_multiplier, sample_rate, steps))

    def ensure_affordable(self, noise_multiplier: float, sample_rate: float, steps: int) -> None:
        """Raise ``PrivacyBudgetExceeded`` if such a round would overspend the budget."""
        if self.epsilon_budget is None:
            return
        projected = self.projected_total(noise_multiplier, sample_rate, steps)
        if projected > self.epsilon_budget:
            raise PrivacyBudgetExceeded(
                f"this round would bring epsilon from {self.total.epsilon:.3f} to {projected:.3f} "
                f"(delta {self.delta:g}), over the budget of {self.epsilon_budget:g}"
            )

    def record(
        self, round_number: int, noise_multiplier: float, sample_rate: float, steps: int
    ) -> RoundPrivacy:
        """Account one round: ``steps`` sampled-Gaussian steps."""
        round_rdp = self._round_rdp(noise_multiplier, sample_rate, steps)
        self._rdp = self._rdp + round_rdp
        cost = RoundPrivacy(
            round_number=round_number,
            round_epsilon=self._epsilon(round_rdp),
            total_epsilon=self._epsilon(self._rdp),
            delta=self.delta,
        )
        self.rounds.append(cost)
        return cost

    @property
    def total(self) -> PrivacySpent:
        """(epsilon, delta) spent over all recorded rounds together."""
        return PrivacySpent(epsilon=self._epsilon(self._rdp), delta=self.delta)


@dataclass(frozen=True)
class ClientLevelDPConfig:
    """Client-level DP (DP-FedAvg, McMahan et al. 2018).

    ``clip_norm`` bounds each hospital's whole update (L2 over all
    parameters); ``clients_per_round`` of the ``population`` hospitals take
    part in each round, and the accountant treats that share as the sampling
    rate of clients.
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
    """Clips whole updates and noises their average; keeps the ledger over rounds.

    The noise comes from OS entropy unless a ``seed`` is given; a seed makes
    it reproducible, for simulations and tests only, since whoever knows the
    seed can subtract the noise.
    """

    def __init__(self, config: ClientLevelDPConfig, seed: int | None = None) -> None:
        self.config = config
        self.ledger = PrivacyLedger(delta=config.delta, epsilon_budget=config.epsilon_budget)
        self._generator = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else seed)

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
        """Uniform average of clipped updates plus Gaussian noise of std ``noise * clip / m``.

        Weights are uniform and the denominator is the fixed ``clients_per_round``
        so one hospital's influence is bounded by ``clip_norm / m`` whatever its
        size.
        """
        if len(client_models) != self.config.clients_per_round:
            raise ValueError(
                f"expected {self.config.clients_per_round} clients this round, got {len(client_models)}"
            )
        self.ledger.ensure_affordable(self.config.noise_multiplier, self.config.sample_rate, 1)
        clipped = [self.clip(global_parameters, model) for model in client_models]
        average = create_aggregator("fedavg", {}).aggregate(
            clipped, client_weights=[1.0] * len(clipped)
        ).parameters
        std = self.config.noise_multiplier * self.config.clip_norm / self.config.clients_per_round
        noisy = {
            name: (
                tensor.double()
                + std * torch.randn(tensor.shape, generator=self._generator, dtype=torch.float64)
            ).to(tensor.dtype)
            for name, tensor in average.items()
        }
        self.ledger.record(round_number, self.config.noise_multiplier, self.config.sample_rate, 1)
        return noisy
