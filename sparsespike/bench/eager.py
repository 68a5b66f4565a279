"""The step-by-step eager baseline: the study's M1..M5 written the way its reference code is
(snnTorch style: a Python loop over time, one dense layer call and one LIF update per layer and
step, a fresh autograd graph node per step), sharing the weights of a sparsespike model.

It is the "before" of the model benchmarks: same weights, same arithmetic (snnTorch's Leaky with
subtract reset, reset detached, fast-sigmoid surrogate slope 25), no fused kernels and no event
skipping. ``step`` carries the state between calls, for streaming inference one time step at a
time.

- M1, M2 (:class:`EagerM1`): the encoder's three layers, then the head Linear -> Leaky.
- M3..M5 (:class:`EagerMemoryModel`, engine mode): per step the encoder's spikes s_t go through
  the memory, m_t, mixed in as the residual s_t + gate * m_t (the model's learnable gate), which
  feeds the head and whose time-mean is the features (the SCL input). The memories in plain torch:
  M3 the Hopfield retrieval LayerNorm(softmax(beta q P^T) P + s_t) with q, P L2-normalised; M4
  one HGRN recurrence step h_t = F_t h_{t-1} + (1 - F_t) silu(i_t), out_proj(RMSNorm(h_t) silu(o_t));
  M5 the Hopfield, then the HGRN on its output.

:func:`eager_model` picks the baseline for a sparsespike model. Study-mode heads (``memory="study"``:
the memory once on the time-mean) and multimodal models (the joint model) have none.
"""

from __future__ import annotations

import math
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


EAGER_MODELS = ("m1", "m2", "m3", "m4", "m5")  # M2 is M1's network; its SCL term is in the loss
_M1_NETWORK = ("m1", "m2")


def _encoder_layers(encoder: nn.Module) -> list[tuple[nn.Module, nn.Module, bool]]:
    if isinstance(encoder, VisualEncoder):
        return [
            (encoder.conv1, encoder.lif1, False),
            (encoder.conv2, encoder.lif2, False),
            (encoder.fc1, encoder.lif3, True),
        ]
    if isinstance(encoder, AudioEncoder):
        return [
            (encoder.fc_input, encoder.lif_input, False),
            (encoder.fc1, encoder.lif1, False),
            (encoder.fc_hidden, encoder.lif_hidden, False),
        ]
    raise ValueError(f"unknown encoder {type(encoder).__name__}")


def m1_layers(model: nn.Module) -> list[tuple[nn.Module, nn.Module, bool]]:
    """A sparsespike M1's (or M2's) (synaptic layer, its LIF, flatten the input first) in order."""
    if getattr(model, "name", None) not in _M1_NETWORK:
        raise ValueError(f"model must be a sparsespike M1 or M2 (build_model('m1', ...)), got {type(model).__name__}")
    return _encoder_layers(model.encoder) + [(model.head.fc_out, model.head.lif_out, False)]


def _apply(layer: nn.Module, flatten: bool, x: Tensor) -> Tensor:
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding)
    return F.linear(x.flatten(1) if flatten else x, layer.weight, layer.bias)


class _SteppedOverTime(nn.Module):
    """forward(x [B, T, ...]) -> (output spike counts [B, C], time-mean of the features [B, F]),
    calling the subclass's step(x_t, state) -> (output spikes, features, state) once per step."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        state, counts, feature_sum = None, 0, 0
        for t in range(x.shape[1]):
            out, features, state = self.step(x[:, t], state)
            counts = counts + out
            feature_sum = feature_sum + features
        return counts, feature_sum / x.shape[1]


class EagerM1(_SteppedOverTime):
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

    def step(self, x_t: Tensor, state: Optional[list] = None) -> tuple[Tensor, Tensor, list]:
        """One time step [B, ...] -> (output spikes [B, C], feature spikes [B, F], new state)."""
        state = state if state is not None else [None] * len(self.layers)
        new_state, h, features = [], x_t, None
        for i, ((layer, _, flatten), (beta, threshold, slope)) in enumerate(zip(self.layers, self.constants)):
            h, mem = leaky_step(_apply(layer, flatten, h), state[i], beta, threshold, slope)
            new_state.append(mem)
            if i == len(self.layers) - 2:
                features = h
        return h, features, new_state


def hopfield_step(memory: nn.Module, x_t: Tensor) -> Tensor:
    """A sparsespike HopfieldMemory on one step [B, d] in plain torch: LayerNorm(softmax(beta q
    P^T) P + x) with q = x / ||x|| (a silent step: q = 0) and P the L2-normalised patterns."""
    norm = torch.linalg.vector_norm(x_t, dim=-1, keepdim=True)
    query = x_t / torch.where(norm > 0, norm, torch.ones_like(norm))
    # normalised every step, as the memory module called once per step does
    patterns = F.normalize(memory.patterns, dim=-1)
    beta = 1.0 / math.sqrt(memory.dim) / memory.temperature
    retrieved = torch.softmax(beta * (query @ patterns.t()), dim=-1) @ patterns
    ln = memory.norm
    return F.layer_norm(retrieved + x_t, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def hgrn_step(hgrn: nn.Module, x_t: Tensor, h: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """One step of a sparsespike HGRN in plain torch: (output [B, d_model], new state [B, inner]).
    h_t = F_t h_{t-1} + (1 - F_t) silu(i_t), F_t = lb + (1 - lb) sigmoid(f_t); the gate is
    formed as the module forms it (exp of log F from 1 - F), so the two agree to rounding."""
    i, f, o = F.linear(x_t, hgrn.in_proj.weight, hgrn.in_proj.bias).chunk(3, dim=-1)
    bound = hgrn.fixed_lower_bound if hgrn.lower_bound_logit is None else torch.sigmoid(hgrn.lower_bound_logit)
    if bound is None:
        log_forget, one_minus = F.logsigmoid(f), torch.sigmoid(-f)
    else:
        one_minus = (1 - bound) * torch.sigmoid(-f)
        log_forget = torch.log1p(-one_minus)
    h = torch.zeros_like(i) if h is None else h
    h = torch.exp(log_forget) * h + F.silu(i) * one_minus
    norm = hgrn.out_norm
    y = F.rms_norm(h, norm.normalized_shape, norm.weight, norm.eps) * F.silu(o)
    return F.linear(y, hgrn.out_proj.weight, hgrn.out_proj.bias), h


def _memory_unsupported(model: nn.Module) -> Optional[str]:
    """Why EagerMemoryModel cannot mirror ``model`` (None: it can)."""
    name = getattr(model, "name", None)
    if name not in ("m3", "m4", "m5"):
        return f"model must be a sparsespike M3, M4 or M5 (build_model('m3', ...)), got {type(model).__name__}"
    if getattr(model, "memory_mode", None) == "study":
        return (
            f"{name} with memory='study' reads its memory once on the time-mean, not per step: "
            "the eager baseline mirrors engine mode (the default) only"
        )
    return None


class EagerMemoryModel(_SteppedOverTime):
    """M3, M4 or M5 (engine mode, audio or visual) stepped over time in Python; forward(x [B, T,
    ...]) -> (logits = output spike counts [B, C], features = time-mean of the head's input
    spikes + gate * memory [B, F]), as the sparsespike model's ``(logits, features)``.

    Built from the sparsespike model, whose Parameters it shares. The state of ``step`` is the
    membranes of the encoder's layers and the head, then the HGRN state (None for M3).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        reason = _memory_unsupported(model)
        if reason is not None:
            raise ValueError(reason)
        self.model = model
        self.layers = _encoder_layers(model.encoder) + [(model.head.fc_out, model.head.lif_out, False)]
        self.constants = [_lif_constants(lif) for _, lif, _ in self.layers]
        self.hopfield = getattr(model, "hopfield", None)  # M3, M5
        self.hgrn = getattr(model, "hgrn", None)  # M4, M5

    def step(self, x_t: Tensor, state: Optional[list] = None) -> tuple[Tensor, Tensor, list]:
        """One time step [B, ...] -> (output spikes [B, C], head input [B, F], new state)."""
        state = state if state is not None else [None] * (len(self.layers) + 1)
        new_state, h = [], x_t
        for i, ((layer, _, flatten), (beta, threshold, slope)) in enumerate(zip(self.layers, self.constants)):
            if i == len(self.layers) - 1:  # the head reads the spikes plus the gated memory
                memory, hgrn_state = h, state[-1]
                if self.hopfield is not None:
                    memory = hopfield_step(self.hopfield, memory)
                if self.hgrn is not None:
                    memory, hgrn_state = hgrn_step(self.hgrn, memory, hgrn_state)
                h = features = h + self.model.memory_gate * memory
            h, mem = leaky_step(_apply(layer, flatten, h), state[i], beta, threshold, slope)
            new_state.append(mem)
        return h, features, new_state + [hgrn_state]


def eager_model(model: nn.Module) -> nn.Module:
    """The eager baseline of a sparsespike M1..M5 (sharing its Parameters): :class:`EagerM1` for
    M1 and M2, :class:`EagerMemoryModel` for M3..M5 in engine mode; ValueError for anything else
    (study-mode heads, the joint model), naming why."""
    name = getattr(model, "name", None)
    if name in _M1_NETWORK:
        return EagerM1(model)
    if name in ("m3", "m4", "m5"):
        return EagerMemoryModel(model)
    if len(getattr(model, "modalities", ())) > 1:
        raise ValueError(
            f"the joint model (two encoders, one fused feature) has no eager baseline; eager_model takes {EAGER_MODELS}"
        )
    raise ValueError(f"eager_model takes a sparsespike model {EAGER_MODELS}, got {type(model).__name__}")
