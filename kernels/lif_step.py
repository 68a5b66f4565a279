"""One leaky integrate-and-fire membrane step for the Triton kernels (lif.py, spiking_hopfield.py).

The expressions of sparsespike/ops/lif_reference.py, in its order (csrc/lif_step.h has the same
for C++), written once for every kernel that runs LIF neurons. Spikes come back in the
membrane's dtype; beta and the threshold may be blocks or scalars. Fusion of multiply-adds is
each kernel's launch option, not this module's.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def snntorch_step(v, x, beta, th, RESET: tl.constexpr):
    """snnTorch convention: the reset from the previous spike r = H(v - th), then leak and input
    (RESET 0 subtract, 1 zero, 2 none); returns the new membrane."""
    r = tl.where(v - th > 0, 1.0, 0.0).to(v.dtype)
    if RESET == 0:
        v = beta * v + x - th * r
    elif RESET == 1:
        v = beta * (1.0 - r) * v + x
    else:
        v = beta * v + x
    return v


@triton.jit
def snntorch_spike(v, th):
    """snnTorch's spike of a membrane: H(v - th), strictly above the threshold."""
    return tl.where(v - th > 0, 1.0, 0.0).to(v.dtype)


@triton.jit
def spikingjelly_charge(v, x, beta, DECAY: tl.constexpr):
    """SpikingJelly convention, charge: h = beta v + (1 - beta) x with decay_input, else beta v + x."""
    if DECAY:
        h = beta * v + (1.0 - beta) * x
    else:
        h = beta * v + x
    return h


@triton.jit
def spikingjelly_spike(h, th):
    """SpikingJelly's spike of a charged membrane: H(h - th), at or above the threshold."""
    return tl.where(h - th >= 0, 1.0, 0.0).to(h.dtype)


@triton.jit
def spikingjelly_reset(h, s, th, RESET: tl.constexpr):
    """SpikingJelly's reset of a charged membrane h given its spike s: the next step's v."""
    if RESET == 0:
        v = h - th * s
    elif RESET == 1:
        v = (1.0 - s) * h
    else:
        v = h
    return v
