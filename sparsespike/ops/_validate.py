"""Argument checks shared by the ops: clear TypeError/ValueError naming the argument.

Metadata checks (type, shape, dtype, device) run in the public function, before anything is
computed, and trace cleanly under torch.compile. The non-finite check reads the data, so it
runs inside each op's kernel call: for free in the C++ compaction, as a torch reduction for the
reference and interpreted Triton paths. On CUDA that reduction would stall the host, so it is off
unless SPARSESPIKE_CHECK_FINITE=1.
"""

from __future__ import annotations

import os

import torch

SPIKE_INT_DTYPES = (torch.bool, torch.uint8)


def check_finite_on_cuda() -> bool:
    return os.environ.get("SPARSESPIKE_CHECK_FINITE", "0") not in ("", "0")


def require_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def require_nonempty(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        raise ValueError(f"{name} has zero elements (shape {tuple(x.shape)}); sparsespike ops need non-empty tensors")


def require_float_weight(weight: torch.Tensor, name: str = "weight") -> None:
    if not weight.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {weight.dtype}")


def require_spike_dtype(spikes: torch.Tensor, weight: torch.Tensor, name: str = "spikes") -> None:
    """Spikes are bool, uint8 or the weight's floating dtype (graded values allowed)."""
    if spikes.dtype in SPIKE_INT_DTYPES:
        return
    if spikes.dtype != weight.dtype:
        raise TypeError(
            f"{name} must be bool, uint8 or the weight's dtype ({weight.dtype}), got {spikes.dtype}"
        )


def require_same_device(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{a_name} is on {a.device} but {b_name} is on {b.device}; move them to one device")


def check_finite(spikes: torch.Tensor, name: str = "spikes") -> None:
    """Raise ValueError if a floating spike tensor holds NaN or Inf (skipped on CUDA by default)."""
    if not spikes.dtype.is_floating_point:
        return
    if spikes.device.type == "cuda" and not check_finite_on_cuda():
        return
    if not bool(torch.isfinite(spikes).all()):
        raise ValueError(f"{name} contains NaN or Inf")
