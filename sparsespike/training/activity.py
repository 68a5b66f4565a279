"""Activity regulariser: a penalty on hidden spiking layers that fire above a target density.

The study reports >97% activation sparsity; trained without a constraint, the audio models drift
to 5-9% of neuron-steps active. During training this records the mean firing rate of every LIF
outside the model's heads (the output layers make the logits and fire as the loss needs) and adds

    weight * sum over layers of max(0, rate - target)^2

to the loss: nothing while a layer stays at or below the target, a pull back towards it above.
The rates are differentiable (the spikes' surrogate gradient carries the penalty), and a step
reads no host value for them. With weight 0 the rates are only recorded: every training run logs
its hidden layers' firing rates per epoch.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import require_finite_number
from ..nn import LIF


def check_activity(target: float, weight: float) -> None:
    """The regulariser's settings, as TrainConfig and StudyConfig take them: target a fraction of
    neuron-steps in (0, 1), weight finite and >= 0."""
    require_finite_number(target, "activity_target", positive=True)
    if target >= 1:
        raise ValueError(f"activity_target is a fraction of neuron-steps in (0, 1), got {target}")
    require_finite_number(weight, "activity_weight", non_negative=True)


def hidden_lifs(model: nn.Module) -> list[tuple[str, LIF]]:
    """The model's LIF modules outside its heads (``head``, ``heads``, ``*_head``)."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    def in_head(name: str) -> bool:
        return any(part == "head" or part == "heads" or part.endswith("_head") for part in name.split("."))

    return [(n, m) for n, m in model.named_modules() if isinstance(m, LIF) and not in_head(n)]


class ActivityPenalty:
    """Records the hidden LIFs' firing rates while a graph is recorded and turns them into the
    penalty (see the module docstring). Use as a context manager around training, or call
    :meth:`close` to remove its hooks."""

    def __init__(self, model: nn.Module, target: float, weight: float) -> None:
        self.target, self.weight = target, weight
        self.layers = hidden_lifs(model)
        self._rates: dict[str, Tensor] = {}
        # per layer, over the epoch's steps it ran in (one encoder per batch in the joint model)
        self._sums: dict[str, Tensor] = {}
        self._steps: dict[str, int] = {}
        self._handles = [m.register_forward_hook(self._recorder(n)) for n, m in self.layers]

    def _recorder(self, name: str):
        def hook(module, args, out) -> None:
            if torch.is_grad_enabled():
                spikes = out[0] if isinstance(out, tuple) else out
                self._rates[name] = spikes.mean()

        return hook

    def __enter__(self) -> "ActivityPenalty":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def penalty(self) -> Optional[Tensor]:
        """The penalty of the forward since the last call (None when no hidden LIF ran with a
        graph, or the weight is 0: then the rates are only recorded); its rates join the epoch's
        means."""
        rates, self._rates = self._rates, {}
        if not rates:
            return None
        for name, rate in rates.items():
            self._sums[name] = self._sums[name] + rate.detach() if name in self._sums else rate.detach().clone()
            self._steps[name] = self._steps.get(name, 0) + 1
        if not self.weight:
            return None
        excess = torch.stack([torch.clamp(r - self.target, min=0.0) for r in rates.values()])
        return self.weight * excess.square().sum()

    def epoch_rates(self) -> dict[str, float]:
        """Each hidden layer's mean firing rate over the penalised steps since the last call (one
        host sync), and start counting anew."""
        sums, steps = self._sums, self._steps
        self._sums, self._steps = {}, {}
        return {name: float(total) / steps[name] for name, total in sums.items()}
