"""The optimizer: the study's AdamW, as torch's fused single-kernel update where it has one.

The default (foreach) AdamW makes whole-size temporaries for every parameter (sqrt of the second
moment, the update): on visual M1's 75.8M-weight fc1, a step took 551 ms with them and 81 ms
fused (2-core VM, float32). Same formula; the fused kernel rounds in its own order.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch

from .._backend import triton_kernels

_FUSED_DEVICES = ("cpu", "cuda")


def adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0, backend: Optional[str] = None
) -> torch.optim.AdamW:
    """AdamW over ``params``, fused when every parameter is a floating tensor on CPU or CUDA.
    ``backend``: the model's; "triton" loads its kernels first (see below)."""
    # Constructing any torch optimizer imports torch._dynamo, which imports triton; triton.language's
    # own jit functions (tl.sum, tl.cumsum) are then compiled or interpreted for good, per
    # TRITON_INTERPRET at that moment. A model on the Triton backend has sparsespike pick the
    # interpreter first (on a machine without CUDA), or its kernels could not run.
    if backend == "triton":
        triton_kernels()
    params = list(params)
    fused = all(p.device.type in _FUSED_DEVICES and p.dtype.is_floating_point for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
