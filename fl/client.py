"""A hospital's local training: FedProx (FedAvg when mu is 0), optionally with DP-SGD.

FedProx (Li et al. 2020) adds ``mu/2 * ||w - w_global||^2`` to the local
objective so that hospitals with skewed data do not drift far from the
global model. With DP-SGD the data term's gradient is clipped per record and
noised by opacus; the proximal term's gradient depends on no record, so it
is added after privatisation and costs no privacy.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fl.aggregation import ClientModel
from fl.data import Dataset, HospitalData
from fl.models import ModelSpec, evaluate, get_parameters, set_parameters
from fl.opacus_import import import_opacus
from fl.privacy import (
    DistributedDPConfig,
    DPParameters,
    DPSGDConfig,
    NoiseSource,
    PrivacyLedger,
    RoundPrivacy,
    SeededNoise,
    derive_seed,
    noise_generator,
    os_generator,
    crypto_noise_dp_optimizer,
)

__all__ = ["HospitalClient", "LocalTrainingConfig", "derive_seed", "distributed_dp_step", "dp_round_parameters"]


@dataclass(frozen=True)
class LocalTrainingConfig:
    """Local SGD settings. ``mu`` is FedProx's proximal weight (0 gives FedAvg).

    ``batch_size`` applies without DP; under DP-SGD each step samples every
    record with ``DPSGDConfig.sample_rate`` instead, and an epoch is
    ``ceil(1 / sample_rate)`` steps.
    """

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 0.1
    mu: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not (self.learning_rate > 0.0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a positive finite number, got {self.learning_rate}")
        if not (self.mu >= 0.0 and math.isfinite(self.mu)):
            raise ValueError(f"mu must be a non-negative finite number, got {self.mu}")


def dp_round_parameters(training: LocalTrainingConfig, dp: DPSGDConfig) -> DPParameters:
    """What one round of DP-SGD with these settings releases about a hospital's records (an epoch is
    ``ceil(1 / sample_rate)`` steps): what its ledger composes, and what anyone can recompute."""
    return DPParameters(
        noise_multiplier=dp.noise_multiplier,
        sample_rate=dp.sample_rate,
        steps=training.epochs * math.ceil(1.0 / dp.sample_rate),
        clipping_norm=dp.max_grad_norm,
    )


class HospitalClient:
    """One hospital: trains the global model on its own records and returns a ``ClientModel``.

    Under DP-SGD every call to ``train`` draws its record sampling and its
    noise from a ChaCha20 stream under a fresh key from the OS
    (:class:`fl.privacy.NoiseSource`), whatever ``seed`` says: noise derived from a
    seed (and the hospital's name and the round) could be regenerated and
    subtracted, and two trainings of one round would share it, so it would
    cancel in their difference. ``seed`` fixes only the batch order of
    training without DP, where no randomness protects anyone. Tests that need
    reproducible DP-SGD opt in with ``seeded_noise``; the ledger then reports
    no epsilon.
    """

    def __init__(
        self,
        hospital: HospitalData,
        model_spec: ModelSpec,
        training: LocalTrainingConfig = LocalTrainingConfig(),
        dp: DPSGDConfig | None = None,
        seed: int | None = None,
        *,
        seeded_noise: SeededNoise | None = None,
        dp_history: Sequence[DPParameters] = (),
        allowed_models: Collection[str] = (),
    ) -> None:
        """``dp_history``: what this hospital's earlier updates of the study declared (e.g. read from the
        chain by a node that restarted), so that the budget covers the whole study. ``allowed_models``:
        the model entry points this hospital's node settings allow (the built-ins always are)."""
        data = hospital.data
        if data.num_samples == 0:
            raise ValueError(f"hospital {hospital.name!r} has no training records")
        if tuple(data.features.shape[1:]) != model_spec.input_shape:
            shape = data.features.shape[1:]
            raise ValueError(
                f"hospital {hospital.name!r} has {data.num_features} features, "
                f"the model expects {model_spec.num_features}" if len(shape) == 1 == len(model_spec.input_shape)
                else f"hospital {hospital.name!r} has examples of shape {tuple(shape)}, "
                     f"the model expects {model_spec.input_shape}"
            )
        problem = model_spec.label_problem(data.labels)
        if problem is not None:
            raise ValueError(f"hospital {hospital.name!r} has {problem}")
        if not torch.isfinite(data.features).all():
            raise ValueError(f"hospital {hospital.name!r} has NaN or infinite features")
        self.hospital = hospital
        self.model_spec = model_spec
        self.allowed_models = tuple(allowed_models)
        self.training = training
        self.dp = dp
        self.seed = seed
        self.seeded_noise = seeded_noise
        if dp_history and dp is None:
            raise ValueError(f"hospital {hospital.name!r} trains without DP-SGD but was given a DP history")
        self.ledger = (
            PrivacyLedger(
                dp.delta, dp.epsilon_budget, noise_seeded=seeded_noise is not None, history=list(dp_history),
                accountant=dp.accountant,
            )
            if dp is not None else None
        )

    @property
    def client_id(self) -> str:
        return self.hospital.name

    @property
    def dp_steps_per_round(self) -> int:
        return self.dp_round_parameters.steps

    @property
    def dp_round_parameters(self) -> DPParameters:
        """What one round of this hospital's DP-SGD releases, as an update declares it."""
        if self.dp is None:
            raise ValueError(f"hospital {self.client_id!r} trains without DP-SGD")
        return dp_round_parameters(self.training, self.dp)

    def train(self, global_parameters: Mapping[str, torch.Tensor], round_number: int) -> ClientModel:
        """Train from ``global_parameters`` for this round and return the resulting model.

        Under DP-SGD the round is refused with ``PrivacyBudgetExceeded`` before
        any record is touched if it would overspend the budget; otherwise its
        cost goes into ``self.ledger``. No training loss or accuracy is
        reported then: unnoised metrics of private records would leak outside
        the privacy guarantee.
        """
        if round_number < 1:
            raise ValueError(f"round_number must be at least 1, got {round_number}")
        for name, tensor in global_parameters.items():
            if not torch.isfinite(tensor).all():
                raise ValueError(f"global parameter {name!r} has NaN or infinite values")
        model = self.model_spec.build(seed=0, allowed=self.allowed_models)
        set_parameters(model, global_parameters)
        anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
        data = self.hospital.data
        if self.dp is None:
            generator = (
                os_generator() if self.seed is None
                else torch.Generator().manual_seed(derive_seed(self.seed, self.client_id, round_number))
            )
            self._train_plain(model, anchor, data, generator)
            local = evaluate(model, data, self.model_spec)
            loss, accuracy = local.loss, local.accuracy
        else:
            noise = noise_generator(self.seeded_noise, self.client_id, round_number)
            self._train_dp(model, anchor, data, noise, round_number)
            loss = accuracy = None
        return ClientModel(
            client_id=self.client_id,
            parameters=get_parameters(model),
            data_samples=data.num_samples,
            training_loss=loss,
            training_accuracy=accuracy,
        )

    @property
    def epsilon_after_next_round(self) -> float:
        """The epsilon this hospital will have spent over the study after one more round (what its update declares)."""
        if self.ledger is None:
            raise ValueError(f"hospital {self.client_id!r} trains without DP-SGD")
        return self.ledger.projected_total(self.dp_round_parameters)

    @property
    def last_round_privacy(self) -> RoundPrivacy | None:
        if self.ledger is None or not self.ledger.rounds:
            return None
        return self.ledger.rounds[-1]

    def _proximal_gradient(self, model: nn.Module, anchor: Mapping[str, torch.Tensor]) -> None:
        """Add the gradient of ``mu/2 ||w - w_global||^2``, i.e. ``mu (w - w_global)``."""
        if self.training.mu == 0.0:
            return
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.grad.add_(parameter - anchor[name], alpha=self.training.mu)

    def _train_plain(
        self,
        model: nn.Module,
        anchor: Mapping[str, torch.Tensor],
        data: Dataset,
        generator: torch.Generator,
    ) -> None:
        optimizer = torch.optim.SGD(model.parameters(), lr=self.training.learning_rate)
        for _ in range(self.training.epochs):
            order = torch.randperm(data.num_samples, generator=generator)
            for batch in order.split(self.training.batch_size):
                optimizer.zero_grad()
                loss = self.model_spec.loss(model(data.features[batch]), data.labels[batch])
                loss.backward()
                self._proximal_gradient(model, anchor)
                optimizer.step()

    def _train_dp(
        self,
        model: nn.Module,
        anchor: Mapping[str, torch.Tensor],
        data: Dataset,
        noise: NoiseSource,
        round_number: int,
    ) -> None:
        dp = self.dp
        assert dp is not None and self.ledger is not None
        release = self.dp_round_parameters
        self.ledger.ensure_affordable(release)
        # Per-record gradients of the summed loss; DPOptimizer divides the
        # clipped, noised sum by the expected batch size, as DP-SGD prescribes
        # for Poisson sampling (dividing by the drawn size would leak it).
        private_model = import_opacus().GradSampleModule(model, loss_reduction="sum")
        optimizer = crypto_noise_dp_optimizer()(
            torch.optim.SGD(private_model.parameters(), lr=self.training.learning_rate),
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=dp.sample_rate * data.num_samples,
            loss_reduction="mean",
            noise=noise,
        )
        for _ in range(release.steps):
            optimizer.zero_grad()
            drawn = noise.bernoulli(data.num_samples, dp.sample_rate)
            loss = self.model_spec.loss(private_model(data.features[drawn]), data.labels[drawn], reduction="sum")
            with warnings.catch_warnings():
                # Inputs never need gradients here; opacus's hooks still fire
                # correctly on the module outputs, which is all they need.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            if not optimizer.pre_step():
                raise RuntimeError("opacus skipped a DP-SGD step; gradient accumulation is not used here")
            self._proximal_gradient(model, anchor)
            optimizer.original_optimizer.step()
        self.ledger.record(round_number, release)


def distributed_dp_step(model_spec: ModelSpec, global_parameters: Mapping[str, torch.Tensor], data: Dataset,
                        distributed: DistributedDPConfig, learning_rate: float,
                        noise: NoiseSource, allowed_models: Collection[str] = ()) -> dict[str, torch.Tensor]:
    """One step of record-level distributed DP-SGD at one hospital: the global model minus
    ``learning_rate`` times (the sum of the clipped per-record gradients of a Poisson sample of its
    records, plus its share of the noise). Not divided by any batch size: the sum must be the same
    function of each record at every hospital, so that the shares add up to the noise the secure sum
    needs against any one record (a hospital's own size would scale its records' sensitivity)."""
    model = model_spec.build(seed=0, allowed=allowed_models)
    set_parameters(model, global_parameters)
    drawn = noise.bernoulli(data.num_samples, distributed.sample_rate)
    parameters = dict(model.named_parameters())
    summed = {name: torch.zeros_like(parameter, dtype=torch.float64) for name, parameter in parameters.items()}
    if drawn.any():
        private_model = import_opacus().GradSampleModule(model, loss_reduction="sum")
        loss = model_spec.loss(private_model(data.features[drawn]), data.labels[drawn], reduction="sum")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()
        samples = {name: parameter.grad_sample.double().flatten(1) for name, parameter in parameters.items()}
        norms = torch.sqrt(sum(sample.pow(2).sum(1) for sample in samples.values()))
        scale = torch.clamp(distributed.clip_norm / (norms + 1e-12), max=1.0)
        for name, sample in samples.items():
            summed[name] = (scale @ sample).view(parameters[name].shape)
    stepped = {}
    for name, parameter in parameters.items():
        gradient = summed[name] + noise.gaussian(parameter.shape, distributed.share_std)
        stepped[name] = (parameter.detach().double() - learning_rate * gradient).to(parameter.dtype)
    return {name: stepped.get(name, tensor.clone()) for name, tensor in get_parameters(model).items()}
