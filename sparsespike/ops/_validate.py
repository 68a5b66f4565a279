"""Argument checks shared by the ops: clear TypeError/ValueError naming the argument.

Metadata checks (type, shape, dtype, device) run in the public function, before anything is
computed, and trace cleanly under torch.compile. The non-finite check reads the data, so it
runs inside each op's kernel call: for free in the C++ compaction, as a torch reduction for the
reference and interpreted Triton paths. On CUDA that reduction would stall the host, so it is off
unless SPARSESPIKE_CHECK_FINITE=1.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch._subclasses.fake_tensor import FakeTensor

SPIKE_INT_DTYPES = (torch.bool, torch.uint8)
# spike dtypes the C++ kernels read directly (others are cast first)
CPP_SPIKE_DTYPES = (torch.float32, torch.float64, torch.bool, torch.uint8)


def check_finite_on_cuda() -> bool:
    return os.environ.get("SPARSESPIKE_CHECK_FINITE", "0") not in ("", "0")


def data_checked(t: torch.Tensor) -> bool:
    """Whether a check may read ``t``'s values: always off CUDA; on CUDA, where reading stalls
    the host, only with SPARSESPIKE_CHECK_FINITE=1."""
    return t.device.type != "cuda" or check_finite_on_cuda()


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


@contextmanager
def spikes_named(name: str):
    """Inside: spike_linear / spike_conv2d's kernels check their input for NaN/Inf for free while
    they read it, and say "spikes"; a caller whose own argument went in (a Hopfield query, a
    model's input) gets its name instead of a second pass over the data."""
    try:
        yield
    except ValueError as exc:
        if str(exc) == "spikes contains NaN or Inf":
            raise ValueError(f"{name} contains NaN or Inf") from None
        raise


def require_same_device(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{a_name} is on {a.device} but {b_name} is on {b.device}; move them to one device")


def check_finite(spikes: torch.Tensor, name: str = "spikes") -> None:
    """Raise ValueError if a floating spike tensor holds NaN or Inf (skipped on CUDA by default)."""
    if not spikes.dtype.is_floating_point:
        return
    if not data_checked(spikes):
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


def require_weight(weight, dims: int, layout: str) -> None:
    """A spike layer's weight: a non-empty floating-point tensor of ``dims`` dimensions."""
    require_tensor(weight, "weight")
    if weight.dim() != dims:
        raise ValueError(f"weight must be {dims}-D {layout}, got shape {tuple(weight.shape)}")
    require_float_weight(weight)
    require_nonempty(weight, "weight")


def require_layer_operands(spikes: torch.Tensor, weight: torch.Tensor, bias) -> None:
    """The checks spike_linear and spike_conv2d share once their shapes agree: non-empty spikes of
    a dtype the weight takes, on the weight's device, and a bias of shape [C_out] and the
    weight's dtype and device (or None)."""
    require_nonempty(spikes, "spikes")
    require_spike_dtype(spikes, weight)
    require_same_device(spikes, "spikes", weight, "weight")
    if bias is not None:
        require_tensor(bias, "bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must have shape [{weight.shape[0]}], got {tuple(bias.shape)}")
        if bias.dtype != weight.dtype:
            raise TypeError(f"bias must have the weight's dtype ({weight.dtype}), got {bias.dtype}")
        require_same_device(bias, "bias", weight, "weight")


def require_grad_mask(grad_mask, spikes: torch.Tensor) -> None:
    """A spike layer's grad_mask: a bool/uint8 tensor of the spikes' shape, on their device."""
    require_tensor(grad_mask, "grad_mask")
    if grad_mask.dtype not in SPIKE_INT_DTYPES:
        raise TypeError(f"grad_mask must be a bool or uint8 tensor, got dtype {grad_mask.dtype}")
    if grad_mask.shape != spikes.shape:
        raise ValueError(f"grad_mask must have the spikes' shape {tuple(spikes.shape)}, got {tuple(grad_mask.shape)}")
    require_same_device(grad_mask, "grad_mask", spikes, "spikes")


def require_time_major(x, name: str) -> None:
    """A time-looping op's input: a non-empty floating-point tensor [T, ...] with T >= 1."""
    require_tensor(x, name)
    if x.dim() < 1:
        raise ValueError(f"{name} must have a leading time dimension [T, ...]")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has T = 0 time steps")
    require_nonempty(x, name)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
