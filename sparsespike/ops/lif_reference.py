"""The leaky integrate-and-fire neuron, step by step in plain torch: the oracle of the fused op.

Two conventions:

- "snntorch" (snnTorch's Leaky): the reset uses the previous step's spike, computed from the
  previous membrane, and subtracts the undecayed threshold; spikes fire on v > threshold.
      r_t = H(v_{t-1} - theta)                       (r_0 from v0)
      v_t = beta v_{t-1} + I_t - theta r_t           reset="subtract"
          = beta (1 - r_t) v_{t-1} + I_t             reset="zero"
          = beta v_{t-1} + I_t                       reset="none"
      s_t = H(v_t - theta);  trace_t = v_t
- "spikingjelly" (SpikingJelly's LIFNode with beta = 1 - 1/tau, v_reset 0 or None): charge,
  fire on h >= threshold, reset within the step.
      h_t = beta v_{t-1} + c I_t                     c = 1 - beta if decay_input else 1
      s_t = H(h_t - theta)
      v_t = h_t - theta s_t | (1 - s_t) h_t | h_t    reset = subtract (soft) | zero (hard) | none
      trace_t = h_t
In both, the trace is the membrane compared with the threshold (s_t = H(trace_t - theta)), and
the final membrane is the state carried to the next call.

The spike's gradient is a surrogate of u = membrane - threshold; its parameter is a runtime
value. A gradient band w truncates it to |u| < w (zero outside): a surrogate with compact
support, so that a neuron-step outside the band passes no gradient through its spike. The
reset's spike is detached unless detach_reset=False.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

SURROGATES = ("fast_sigmoid", "atan", "sigmoid", "triangle")
DEFAULT_SURROGATE_PARAM = {"fast_sigmoid": 25.0, "atan": 2.0, "sigmoid": 25.0, "triangle": 1.0}
RESETS = ("subtract", "zero", "none")
CONVENTIONS = ("snntorch", "spikingjelly")


def surrogate_grad(u: Tensor, surrogate: str, param: float, band: Optional[float] = None) -> Tensor:
    """d spike / d u for u = membrane - threshold, zero where |u| >= band (when given).

    fast_sigmoid(k): 1 / (1 + k|u|)^2 (snnTorch's, slope 25 in the study); atan(a): (a/2) /
    (1 + (pi a u / 2)^2) (snnTorch's default, a = 2); sigmoid(k): k sig(ku) (1 - sig(ku));
    triangle(a): a max(0, 1 - a|u|) (peak a, support |u| < 1/a, unit area).
    """
    if surrogate == "fast_sigmoid":
        grad = 1.0 / (1.0 + param * u.abs()) ** 2
    elif surrogate == "atan":
        grad = (param / 2.0) / (1.0 + (math.pi * param * u / 2.0) ** 2)
    elif surrogate == "sigmoid":
        sig = torch.sigmoid(param * u)
        grad = param * sig * (1.0 - sig)
    elif surrogate == "triangle":
        grad = param * torch.clamp(1.0 - param * u.abs(), min=0.0)
    else:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    return grad if band is None else grad * (u.abs() < band).to(grad.dtype)


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, surrogate, param, inclusive, band):
        ctx.save_for_backward(u)
        ctx.surrogate, ctx.param, ctx.band = surrogate, param, band
        return (u >= 0).to(u.dtype) if inclusive else (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * surrogate_grad(u, ctx.surrogate, ctx.param, ctx.band), None, None, None, None


def spike_fn(u: Tensor, surrogate: str, param: float, inclusive: bool, band: Optional[float] = None) -> Tensor:
    """Heaviside of u (u > 0, or u >= 0 when inclusive) with a surrogate gradient (zero where
    |u| >= band, when given)."""
    return _SurrogateSpike.apply(u, surrogate, param, inclusive, band)


def lif_reference(
    current: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v0: Tensor,
    reset: str = "subtract",
    detach_reset: bool = True,
    surrogate: str = "fast_sigmoid",
    surrogate_param: float = 25.0,
    convention: str = "snntorch",
    decay_input: bool = True,
    spike=None,
    grad_band: Optional[float] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(spikes [T, ...], final membrane [...], membrane trace [T, ...]) by a Python loop over T.

    beta, threshold and v0 broadcast against current.shape[1:]; beta is used as given (callers
    clamp it). Differentiable in every tensor argument. ``spike``, a function of
    membrane - threshold with its own gradient (e.g. an snnTorch surrogate), replaces the
    Heaviside-with-surrogate of the snntorch convention. ``grad_band`` truncates the surrogate to
    |membrane - threshold| < grad_band.
    """
    v = v0
    spikes, trace = [], []
    if convention == "snntorch":
        fire = spike or (lambda u: spike_fn(u, surrogate, surrogate_param, inclusive=False, band=grad_band))
        for t in range(current.shape[0]):
            r = fire(v - threshold)
            r = r.detach() if detach_reset else r
            if reset == "subtract":
                v = beta * v + current[t] - threshold * r
            elif reset == "zero":
                v = beta * (1.0 - r) * v + current[t]
            else:
                v = beta * v + current[t]
            spikes.append(fire(v - threshold))
            trace.append(v)
    elif convention == "spikingjelly":
        for t in range(current.shape[0]):
            h = beta * v + ((1.0 - beta) * current[t] if decay_input else current[t])
            s = spike_fn(h - threshold, surrogate, surrogate_param, inclusive=True, band=grad_band)
            s_reset = s.detach() if detach_reset else s
            if reset == "subtract":
                v = h - threshold * s_reset
            elif reset == "zero":
                v = (1.0 - s_reset) * h
            else:
                v = h
            spikes.append(s)
            trace.append(h)
    else:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return torch.stack(spikes), v, torch.stack(trace)
