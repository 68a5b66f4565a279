"""Argument checks shared by the ops: clear TypeError/ValueError naming the argument.

Metadata checks (type, shape, dtype, device) run in the public function, before anything is
computed, and trace cleanly under torch.compile. The non-finite check reads the data, so it
runs inside each op's kernel call: for free in the C++ compaction, as a torch reduction for the
reference and interpreted Triton paths. On CUDA that reduction would stall the host, so it is off
unless SPARSESPIKE_CHECK_FINITE=1.
"""

from __future__ import annotations

import math
import numbers
import operator
import os

import torch
from torch._subclasses.fake_tensor import FakeTensor

SPIKE_INT_DTYPES = (torch.bool, torch.uint8)


def check_finite_on_cuda() -> bool:
    return os.environ.get("SPARSESPIKE_CHECK_FINITE", "0") not in ("", "0")


def require_tensor(x, name: str) -> torch.Tensor:
    """A dense tensor with data: torch.sparse layouts, meta tensors and FakeTensors outside
    torch.compile (which traces with fakes of its own) are refused by name, not deep inside."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {x.layout}; convert it with .to_dense()")
    # x.is_meta, not x.device.type: building a device object costs more than the rest of this check
    if x.is_meta and not torch.compiler.is_compiling():
        raise ValueError(f"{name} is a meta tensor (no data); sparsespike ops compute on cpu or cuda tensors")
    if type(x) is not torch.Tensor and isinstance(x, FakeTensor) and not torch.compiler.is_compiling():
        raise ValueError(f"{name} is a FakeTensor; sparsespike ops take fake tensors only inside torch.compile")
    return x


def require_finite_number(value, name: str, *, positive: bool = False) -> float:
    """A real number (Python's or numpy's) that is finite (and > 0 with ``positive``), as a float:
    NaN passes every comparison check by comparing false, so it is refused explicitly."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value}")
    return value


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
        raise TypeError(f"{name} must be bool, uint8 or the weight's dtype ({weight.dtype}), got {spikes.dtype}")


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


def refuse_double_backward(op: str, backend: str) -> None:
    """Called first in every kernel backward. The kernels compute gradients outside autograd, so
    under create_graph=True (a gradient penalty, gradgradcheck) the first-order gradients would
    carry an incomplete graph and the second-order ones would silently miss terms: refuse instead.
    (Backward runs with grad mode on exactly when create_graph=True; torch.compile's traced
    backward never asks for a graph.)"""
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise NotImplementedError(
            f"{op}: the {backend!r} backend computes gradients in its own kernels and has no double backward "
            "(create_graph=True); call it with backend='reference' for higher-order gradients"
        )


def require_positive_int(value, name: str) -> int:
    """A module size (features, channels, patterns): an integer >= 1 (Python's or numpy's), never a
    bool or a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value
