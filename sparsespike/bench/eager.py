"""The step-by-step eager baseline: the study's M1 written the way its reference code is (snnTorch
style: a Python loop over time, one dense layer call and one LIF update per layer and step, a
fresh autograd graph node per step), sharing the weights of a sparsespike M1.

It is the "before" of the model benchmarks: same weights, same arithmetic (snnTorch's Leaky with
subtract reset, reset detached, fast-sigmoid surrogate slope 25), no fused kernels and no event
skipping. ``step`` carries the membranes between calls, for streaming inference one time step at
a time.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.backbones import AudioEncoder, VisualEncoder


class _FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward, snnTorch's fast-sigmoid gradient 1 / (slope |x| + 1)^2 backward."""

    @staticmethod
    def forward(ctx, shifted: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(shifted)
        ctx.slope = slope
        return (shifted > 0).to(shifted.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (shifted,) = ctx.saved_tensors
        return grad / (ctx.slope * shifted.abs() + 1.0) ** 2, None


def leaky_step(current: Tensor, mem: Optional[Tensor], beta: float, threshold: float, slope: float):
    """One snnTorch Leaky step (subtract reset from the previous membrane, reset detached):
    returns (spikes, membrane)."""
    if mem is None:
        mem = torch.zeros_like(current)
    reset = (mem - threshold > 0).to(current.dtype).detach()
    mem = beta * mem + current - reset * threshold
    return _FastSigmoidSpike.apply(mem - threshold, slope), mem


def _lif_constants(lif: nn.Module) -> tuple[float, float, float]:
    return float(lif.beta), float(lif.threshold), float(lif.surrogate_param)


EAGER_MODELS = ("m1", "m2")  # M2 is M1's network; its supervised contrastive term is in the loss


def m1_layers(model: nn.Module) -> list[tuple[nn.Module, nn.Module, bool]]:
    """A sparsespike M1's (or M2's) (synaptic layer, its LIF, flatten the input first) in order."""
    if getattr(model, "name", None) not in EAGER_MODELS:
        raise ValueError(f"model must be a sparsespike M1 or M2 (build_model('m1', ...)), got {type(model).__name__}")
    e = model.encoder
    if isinstance(e, VisualEncoder):
        layers = [(e.conv1, e.lif1, False), (e.conv2, e.lif2, False), (e.fc1, e.lif3, True)]
    elif isinstance(e, AudioEncoder):
        layers = [(e.fc_input, e.lif_input, False), (e.fc1, e.lif1, False), (e.fc_hidden, e.lif_hidden, False)]
    else:
        raise ValueError(f"unknown encoder {type(e).__name__}")
    return layers + [(model.head.fc_out, model.head.lif_out, False)]


class EagerM1(nn.Module):
    """M1 (audio or visual) stepped over time in Python; forward(x [B, T, ...]) -> (logits
    = output spike counts [B, C], rates = time-mean of the feature spike layer [B, F]).

    Built from a sparsespike M1 (``build_model("m1", ...)``): its Parameters are shared, so the
    gradients land on the same tensors and an optimizer over either updates both.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.layers = m1_layers(model)
        self.model = model
        self.constants = [_lif_constants(lif) for _, lif, _ in self.layers]

    @staticmethod
    def _apply(layer: nn.Module, flatten: bool, x: Tensor) -> Tensor:
        if isinstance(layer, nn.Conv2d):
            return F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding)
        return F.linear(x.flatten(1) if flatten else x, layer.weight, layer.bias)

    def step(self, x_t: Tensor, state: Optional[list] = None) -> tuple[Tensor, Tensor, list]:
        """One time step [B, ...] -> (output spikes [B, C], feature spikes [B, F], new state)."""
        state = state if state is not None else [None] * len(self.layers)
        new_state, h, features = [], x_t, None
        for i, ((layer, _, flatten), (beta, threshold, slope)) in enumerate(zip(self.layers, self.constants)):
            h, mem = leaky_step(self._apply(layer, flatten, h), state[i], beta, threshold, slope)
            new_state.append(mem)
            if i == len(self.layers) - 2:
                features = h
        return h, features, new_state

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        state, counts, feature_sum = None, 0, 0
        for t in range(x.shape[1]):
            out, features, state = self.step(x[:, t], state)
            counts = counts + out
            feature_sum = feature_sum + features
        return counts, feature_sum / x.shape[1]
