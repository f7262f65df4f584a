"""FedAdam: server-side Adam on the pseudo-gradient (Reddi et al., "Adaptive Federated Optimization", ICLR 2021)."""

from __future__ import annotations

import torch

from fl.aggregation.averaging import FedAvgAggregator, by_id, weighted_average
from fl.aggregation.base import (
    AggregationError,
    AggregationResult,
    ClientModel,
    StateDict,
    Tensor,
    check_number,
    require,
)
from fl.aggregation.kernels import compute_dtype

EXP_AVG = "exp_avg/"
EXP_AVG_SQ = "exp_avg_sq/"
STEP = "step"


class FedAdamAggregator(FedAvgAggregator):
    """Adam on the server, one step per round.

    The pseudo-gradient is ``global - average`` (the average weighted by sample
    count, or by explicit weights), so a step moves the global model towards
    the clients. First and second moments and the time step persist across
    rounds; ``state_dict``/``load_state_dict`` save and restore them so a
    restarted coordinator resumes where it stopped. Non-float buffers (e.g.
    ``num_batches_tracked``) take the weighted average directly.

    The update is the paper's Algorithm 2: ``x += lr * m / (sqrt(v) + tau)``
    with no bias correction (Adam's correction makes the first rounds' steps
    ``lr * sign(delta)`` whatever their size). ``epsilon`` is the paper's
    ``tau``, the adaptivity floor; the paper tunes it around 1e-3, and much
    smaller values blow up the steps of coordinates that barely move.
    """

    name = "fedadam"
    default_config = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-3, "learning_rate": 0.001}

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._exp_avg: dict[str, Tensor] = {}
        self._exp_avg_sq: dict[str, Tensor] = {}
        self._step = 0

    def _check_config(self) -> None:
        for key in ("beta1", "beta2"):
            check_number(self.config[key], f"fedadam: {key}", low=0.0, high=1.0, high_open=True)
        check_number(self.config["epsilon"], "fedadam: epsilon", low=0.0, low_open=True)
        check_number(self.config["learning_rate"], "fedadam: learning_rate", low=0.0, low_open=True)

    @property
    def step(self) -> int:
        """Rounds applied so far (Adam's time step)."""
        return self._step

    def _aggregate(
        self, clients: list[ClientModel], explicit: list[float] | None, global_model: StateDict | None
    ) -> AggregationResult:
        if global_model is None:
            raise AggregationError("fedadam needs global_model: the pseudo-gradient is global minus average")
        weights = self._weights(clients, explicit)
        average = weighted_average(clients, weights)
        self._check_moments(global_model)
        beta1, beta2 = float(self.config["beta1"]), float(self.config["beta2"])
        epsilon, learning_rate = float(self.config["epsilon"]), float(self.config["learning_rate"])
        step = self._step + 1

        parameters: dict[str, Tensor] = {}
        exp_avg: dict[str, Tensor] = {}
        exp_avg_sq: dict[str, Tensor] = {}
        for name, current in global_model.items():
            if not current.is_floating_point():
                parameters[name] = average[name]
                continue
            work = compute_dtype(current.dtype)
            model = current.detach().to(work, copy=True)
            gradient = model - average[name].to(work)
            first = self._exp_avg.get(name, torch.zeros_like(model)).mul(beta1)
            first.add_(gradient.mul(1.0 - beta1))
            second = self._exp_avg_sq.get(name, torch.zeros_like(model)).mul(beta2)
            second.add_(gradient.mul_(gradient).mul_(1.0 - beta2))
            denominator = second.sqrt().add_(epsilon)
            model.sub_(first.div(denominator).mul_(learning_rate))
            parameters[name] = model.to(current.dtype)
            exp_avg[name], exp_avg_sq[name] = first, second
        # Commit the new state only once the whole round succeeded.
        self._exp_avg, self._exp_avg_sq, self._step = exp_avg, exp_avg_sq, step
        settings = {
            "beta1": beta1,
            "beta2": beta2,
            "epsilon": epsilon,
            "learning_rate": learning_rate,
            "step": step,
        }
        return self._result(clients, parameters, by_id(clients, weights), settings)

    def _check_moments(self, global_model: StateDict) -> None:
        if self._step == 0:
            return
        floats = {name: tensor for name, tensor in global_model.items() if tensor.is_floating_point()}
        require(
            set(floats) == set(self._exp_avg),
            "fedadam: the optimizer state was built for a model with parameters "
            f"{sorted(self._exp_avg)}, the global model has {sorted(floats)}",
        )
        for name, tensor in floats.items():
            require(
                self._exp_avg[name].shape == tensor.shape,
                f"fedadam: optimizer state for {name!r} has shape {tuple(self._exp_avg[name].shape)}, "
                f"the global model's is {tuple(tensor.shape)}",
            )

    def state_dict(self) -> dict[str, Tensor]:
        """Moments and time step as tensors (safetensors-serialisable): ``exp_avg/<name>``, ``exp_avg_sq/<name>``, ``step``."""
        state = {STEP: torch.tensor(self._step, dtype=torch.int64)}
        for name in self._exp_avg:
            state[EXP_AVG + name] = self._exp_avg[name].clone()
            state[EXP_AVG_SQ + name] = self._exp_avg_sq[name].clone()
        return state

    def load_state_dict(self, state: StateDict) -> None:
        """Restore what ``state_dict`` returned; rejects anything malformed without changing the current state."""
        step = state.get(STEP)
        require(
            isinstance(step, Tensor) and step.dim() == 0 and step.dtype == torch.int64 and int(step) >= 0,
            "fedadam state: 'step' must be a non-negative int64 scalar tensor",
        )
        firsts = {key[len(EXP_AVG) :]: value for key, value in state.items() if key.startswith(EXP_AVG)}
        seconds = {key[len(EXP_AVG_SQ) :]: value for key, value in state.items() if key.startswith(EXP_AVG_SQ)}
        unknown = sorted(set(state) - {STEP} - {EXP_AVG + n for n in firsts} - {EXP_AVG_SQ + n for n in seconds})
        require(not unknown, f"fedadam state: unexpected key(s) {unknown}")
        require(set(firsts) == set(seconds), "fedadam state: exp_avg and exp_avg_sq name different parameters")
        require(int(step) > 0 or not firsts, "fedadam state: moments present at step 0")
        for name, first in firsts.items():
            second = seconds[name]
            for label, tensor in ((EXP_AVG, first), (EXP_AVG_SQ, second)):
                require(
                    isinstance(tensor, Tensor) and tensor.dtype in (torch.float32, torch.float64),
                    f"fedadam state: {label}{name} must be a float32 or float64 tensor",
                )
                require(bool(torch.isfinite(tensor).all()), f"fedadam state: {label}{name} contains NaN or Inf")
            require(first.shape == second.shape, f"fedadam state: moments of {name!r} differ in shape")
            require(bool((second >= 0).all()), f"fedadam state: exp_avg_sq/{name} has negative entries")
        self._exp_avg = {name: tensor.detach().clone() for name, tensor in firsts.items()}
        self._exp_avg_sq = {name: tensor.detach().clone() for name, tensor in seconds.items()}
        self._step = int(step)
