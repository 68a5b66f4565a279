"""Data-driven firing calibration: scale each spiking layer's synaptic weights so that, on a
sample batch, the layer fires at a target rate.

Why: with PyTorch's default init (the study's) and sparse event input (a few % of SHD-like
frames active), every layer past the first stays silent, so no spike reaches the output, the
logits are all zero and training cannot start. Scaling only changes each layer's gain, not the
shape of its init distribution (the LSUV idea, with firing rate in place of variance). Layers are
calibrated in forward order, each after the ones feeding it.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from ..nn import LIF

HIDDEN_RATE = 0.03  # >97% sparsity, as the study reports
OUTPUT_RATE = 0.02


def spiking_layers(model: nn.Module) -> list[tuple[str, nn.Module, LIF]]:
    """(name, synaptic layer, its LIF) in registration order: each LIF with the Linear/Conv2d
    registered most recently before it."""
    pairs, last = [], None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            last = module
        elif isinstance(module, LIF) and last is not None:
            pairs.append((name, last, module))
    return pairs


@torch.no_grad()
def calibrate_firing(
    model: nn.Module,
    forward: Callable[[], object],
    hidden_rate: float = HIDDEN_RATE,
    output_rate: float = OUTPUT_RATE,
    tolerance: float = 1.5,
    max_steps: int = 12,
    skip: Iterable[str] = (),
) -> dict[str, dict[str, float]]:
    """Scale weight and bias of every spiking layer that ``forward()`` runs (the last one at
    ``output_rate``, the others at ``hidden_rate``) until its rate on that forward is within a
    factor ``tolerance`` of the target (or ``max_steps`` forwards). Layers named in ``skip`` are
    left alone. Returns {lif name: {"scale", "rate"}}."""
    if not 0 < hidden_rate < 1 or not 0 < output_rate < 1:
        raise ValueError(f"rates must be in (0, 1), got hidden_rate={hidden_rate}, output_rate={output_rate}")
    rates: dict[str, float] = {}
    handles = [
        lif.register_forward_hook(lambda m, i, o, n=name: rates.__setitem__(n, float(o.float().mean())))
        for name, _, lif in spiking_layers(model)
    ]
    was_training = model.training
    model.eval()
    try:
        forward()
        ran = [(n, layer) for n, layer, _ in spiking_layers(model) if n in rates]
        output = ran[-1][0] if ran else None  # the last spiking layer the forward ran
        result = {}
        for name, layer in ran:
            if name not in set(skip):
                target = output_rate if name == output else hidden_rate
                result[name] = _search(layer, name, target, tolerance, max_steps, forward, rates)
        return result
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def _search(
    layer: nn.Module,
    name: str,
    target: float,
    tolerance: float,
    max_steps: int,
    forward: Callable[[], object],
    rates: dict[str, float],
) -> dict[str, float]:
    """Bisect log(scale) between a silent (too low) and a too-high bracket."""
    original = [(p, p.detach().clone()) for p in (layer.weight, layer.bias) if p is not None]
    low: Optional[float] = None  # log-scales known to give too low / too high a rate
    high: Optional[float] = None
    log_scale, rate = 0.0, rates[name]
    for _ in range(max_steps):
        if target / tolerance <= rate <= target * tolerance:
            break
        if rate < target:
            low = log_scale
            log_scale = log_scale + math.log(4.0) if high is None else (log_scale + high) / 2
        else:
            high = log_scale
            log_scale = log_scale - math.log(4.0) if low is None else (log_scale + low) / 2
        for p, value in original:
            p.copy_(value * math.exp(log_scale))
        forward()
        rate = rates[name]
    return {"scale": math.exp(log_scale), "rate": rate}
