"""spike_linear: event-driven propagation of spikes through a dense weight, y = spikes @ W^T + b.

Three implementations behind one entry point, :func:`spike_linear`:

- reference: ``F.linear`` on the spikes cast to the weight's dtype; the oracle.
- cpp (CPU): each row's nonzeros are compacted and only their weight rows are summed, from a
  cached input-major, tile-packed copy of W (``csrc/spike_linear.cpp``); for wide inputs and few
  rows, input-stationary (each weight tile streamed once, added into the rows where its input fired).
- triton (CUDA, or CPU under TRITON_INTERPRET=1): the same, as ELL compaction + gather kernels
  (``kernels/spike_linear.py``).

``backend="auto"`` (the default) picks per call between the event-driven kernel and a dense
GEMM from the input density and the layer's shape (``sparsespike.dispatch``). Backward: the
weight gradient touches only active inputs (deterministic, no atomics); the input gradient is a
dense GEMM and is skipped when the spikes do not require grad.

Every call reports the nonzeros it propagated, and counts nnz x out_features synaptic operations
into any active ``sparsespike.count_synops()`` counter.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .._backend import cpp, empty_output, require_triton_kernels, resolve_backend
from .._backend import numpy_view as _numpy
from ..dispatch import density_history, get_crossover, mask_denser_than, padding_factor
from ..synops import record as record_synops
from ._framework import KernelOp
from ._saved_spikes import as_bytes_if_binary
from ._validate import (
    CPP_SPIKE_DTYPES,
    check_finite,
    require_grad_mask,
    require_layer_operands,
    require_tensor,
    require_weight,
)
from ._weight_cache import content_checks, content_fingerprint, weight_cache

__all__ = ["SPIKE_LINEAR", "spike_linear", "spike_linear_reference"]

_DENSITY_SAMPLE_ROWS = 64
_DENSITY_SAMPLE_ELEMENTS = 1 << 16
_DENSITY_SAMPLE_MIN_ROWS = 4


# --------------------------------------------------------------------------- reference


def spike_linear_reference(spikes: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """The oracle: F.linear of the spikes (cast to the weight's dtype). Differentiable."""
    x = spikes if spikes.dtype == weight.dtype else spikes.to(weight.dtype)
    return F.linear(x, weight, bias)


def _as_dense(spikes: Tensor, dtype: torch.dtype) -> Tensor:
    return spikes if spikes.dtype == dtype else spikes.to(dtype)


def _count_nonzero(spikes: Tensor) -> Tensor:
    """Nonzeros of the spikes after the non-finite check (one C++ pass on CPU when available)."""
    if spikes.device.type == "cpu" and spikes.dtype in CPP_SPIKE_DTYPES and cpp() is not None:
        return _cpp_count(spikes)
    check_finite(spikes)
    return torch.count_nonzero(spikes).to(torch.int64)


# --------------------------------------------------------------------------- C++ (CPU)


def _packed_weight(weight: Tensor) -> Tensor:
    def build(w: Tensor) -> Tensor:
        tile = cpp().spike_linear_tile_bytes // w.element_size()
        packed = empty_output(w, (-(-w.shape[0] // tile), w.shape[1], tile))  # rebuilt per optimizer step
        cpp().spike_linear_pack_weight(_numpy(w), packed.numpy(), torch.get_num_threads())
        return packed

    return weight_cache.get(weight, "cpp-packed", build, content_fingerprint)


# Wide inputs, few rows (visual fc1, 147968 inputs): the input-stationary forward streams each
# weight tile once instead of gathering rows per row. Measured (2 cores, fp32, ms, gather vs by
# input): [200 x 147968] -> 512 at 5%: 82.2 vs 53.8, at 3%: 61.5 vs 37.1; [800 x 147968] at 5%:
# 309.3 vs 213.3; but [3200 x 1024] -> 1024 at 3%: 2.4 vs 6.0.
BY_INPUT_MIN_IN_FEATURES = 32768
BY_INPUT_MAX_ROWS = 4096  # its accumulator, rows x one 128-byte tile, stays in L2


def _forward_by_input(rows: int, in_features: int) -> bool:
    return in_features >= BY_INPUT_MIN_IN_FEATURES and rows <= BY_INPUT_MAX_ROWS


def _cpp_forward(spikes: Tensor, weight: Tensor, bias: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    out = torch.empty((spikes.shape[0], weight.shape[0]), dtype=weight.dtype)
    by_input = _forward_by_input(spikes.shape[0], weight.shape[1])
    nnz = (cpp().spike_linear_forward_by_input if by_input else cpp().spike_linear_forward)(
        _numpy(spikes),
        _packed_weight(weight).numpy(),
        None if bias is None else _numpy(bias),
        out.numpy(),
        torch.get_num_threads(),
    )
    return out, torch.tensor(nnz, dtype=torch.int64)


def _cpp_count(spikes: Tensor) -> Tensor:
    """Nonzeros of the spikes, raising on NaN/Inf: one pass, for the dense path's SynOp count."""
    return torch.tensor(cpp().spikes_count(_numpy(spikes), torch.get_num_threads()), dtype=torch.int64)


# The input-by-input weight gradient reads a random grad row per event: it wins while grad stays
# in cache. Measured (2-core VM, 3% spikes, ms, against the scatter kernel plus the transposing copy
# autograd makes of its [in, out] result): 200 x 147968 -> 512: 247 vs 1056; 800 x 1024 -> 1024:
# 3.8 vs 6.8; 32 x 1024 -> 1024: 1.2 vs 3.8; but 3200 x 1024 -> 1024 (13 MB of grad): 24 vs 16, and
# 3200 x 512 -> 10 (ten outputs, a register's worth): 1.9 vs 1.1.
BY_INPUT_MAX_GRAD_BYTES = 4 << 20
BY_INPUT_MIN_OUTPUTS = 64


def _cpp_grad_weight_t(grad_out: Tensor, spikes: Tensor) -> Tensor:
    """spikes^T @ grad_out, [in, out]: the transposed view of an nn.Linear-layout [out, in]
    gradient (both kernels write that layout, so autograd keeps it without a copy), computed
    input by input for few rows, else scattered row by row."""
    rows, out_features = grad_out.shape
    by_input = rows * out_features * grad_out.element_size() <= BY_INPUT_MAX_GRAD_BYTES and (
        out_features >= BY_INPUT_MIN_OUTPUTS
    )
    kernel = cpp().spike_linear_grad_weight_by_input if by_input else cpp().spike_linear_grad_weight
    gw = empty_output(grad_out, (out_features, spikes.shape[1]))
    kernel(_numpy(spikes), _numpy(grad_out), gw.numpy(), torch.get_num_threads())
    return gw.t()


def _sampled_nnz(spikes: Tensor) -> tuple[Tensor, int, bool]:
    """Nonzeros of 64 evenly spaced rows, fewer (at least 4) where rows are wide (cheap next to
    either kernel; 64 rows of a 147968-wide input copied 38 MB), the number of elements they
    hold, and whether that sample was the whole tensor (then also validated)."""
    rows, width = spikes.shape
    sample_rows = max(_DENSITY_SAMPLE_MIN_ROWS, min(_DENSITY_SAMPLE_ROWS, _DENSITY_SAMPLE_ELEMENTS // width))
    if rows <= sample_rows:
        return _cpp_count(spikes), spikes.numel(), True
    pick = torch.linspace(0, rows - 1, sample_rows).long()
    sample = spikes.index_select(0, pick)
    return torch.tensor(cpp().spikes_count(_numpy(sample), 1)), sample.numel(), False


# Below this many input rows (B x T) a dense product on CPU costs less than the event-driven
# call, whose content check of the cached packed weight reads all of W as a GEMV of one row does:
# streaming one step at a time goes dense. Measured at 3% density (2-core VM): 1 row, dense
# 0.08 / 0.14 / 0.07 ms vs cpp 0.17 / 0.31 / 0.23 ms (700x1024, 1024x1024, 1024x512); 4 rows even.
CONTENT_CHECK_ROWS = 4


def _cpu_event_driven(weight: Tensor, density: float) -> bool:
    tile = cpp().spike_linear_tile_bytes // weight.element_size()
    return density * padding_factor(weight.shape[0], tile) <= get_crossover("cpu").forward_density


# --------------------------------------------------------------------------- Triton


def _triton_forward(spikes: Tensor, weight: Tensor, bias: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    check_finite(spikes)
    # W^T is rebuilt per call: on a GPU the transpose costs microseconds, so no cache to go stale
    return require_triton_kernels("spike_linear").forward(spikes, weight.t().contiguous(), bias)


def _cuda_event_driven(spikes: Tensor, weight: Tensor) -> bool:
    crossover = get_crossover("cuda")
    density = density_history.estimate(_site(weight))
    if density is None:
        return spikes.shape[0] <= crossover.small_rows
    return density <= crossover.forward_density


def _site(weight: Tensor) -> tuple:
    return ("spike_linear", weight.data_ptr(), tuple(weight.shape))


# --------------------------------------------------------------------------- forward and backward per path


def _forward_default(spikes, weight, bias):
    nnz = _count_nonzero(spikes)  # validates before the GEMM runs
    return spike_linear_reference(spikes, weight, bias), nnz


def _cpp_adaptive_forward(spikes, weight, bias):
    """backend="auto" on CPU: the event-driven kernel below the crossover density, else dense."""
    if spikes.shape[0] < CONTENT_CHECK_ROWS and content_checks():  # dense, whatever the density
        nnz = _cpp_count(spikes)
    else:
        sample_nnz, sample_size, exact = _sampled_nnz(spikes)
        if _cpu_event_driven(weight, int(sample_nnz) / sample_size):
            return _cpp_forward(spikes, weight, bias)
        nnz = sample_nnz if exact else _cpp_count(spikes)
    # nnz was counted (and the spikes validated) before the GEMM runs
    return F.linear(_as_dense(spikes, weight.dtype), weight, bias), nnz


def _triton_adaptive_forward(spikes, weight, bias):
    """backend="auto" on CUDA: by the density of the previous call through this weight."""
    if _cuda_event_driven(spikes, weight):
        out, nnz = _triton_forward(spikes, weight, bias)
    else:
        out, nnz = _forward_default(spikes, weight, bias)
    density_history.record(_site(weight), nnz, spikes.numel())
    return out, nnz


def _forward(path, adaptive, spikes, weight, bias, grad_mask=None):
    """(spikes @ weight^T + bias, nonzeros of spikes) on one path; grad_mask only shapes the
    backward (on the reference path, through the graph)."""
    if path == "reference" and grad_mask is not None and spikes.requires_grad:
        spikes = torch.where(grad_mask.bool(), spikes, spikes.detach())  # gradient only at the mask
    if path == "cpp":
        return (_cpp_adaptive_forward if adaptive else _cpp_forward)(spikes, weight, bias)
    if path == "triton":
        return (_triton_adaptive_forward if adaptive else _triton_forward)(spikes, weight, bias)
    return _forward_default(spikes, weight, bias)


def _grad_weight_t_default(grad_out, spikes):
    # computed as [out, in], nn.Linear's layout: autograd keeps the transposed view without a copy
    return (grad_out.t() @ _as_dense(spikes, grad_out.dtype)).t()


def _grad_weight_t(path, adaptive, grad_out, spikes, nnz):
    """spikes^T @ grad_out, [in, out] (the weight gradient, transposed), on one path; adaptive
    goes event-driven only below the backward crossover density."""
    if path == "cpp":
        if not adaptive or int(nnz) / spikes.numel() <= get_crossover("cpu").backward_density:
            return _cpp_grad_weight_t(grad_out, spikes)
    elif path == "triton":
        event_driven = True
        if adaptive:  # CUDA: the density the previous backward of this shape saw
            site = ("spike_linear_grad", tuple(spikes.shape))
            density = density_history.estimate(site)
            event_driven = density is not None and density <= get_crossover("cuda").backward_density
            density_history.record(site, nnz, spikes.numel())
        if event_driven:
            return require_triton_kernels("spike_linear").grad_weight_t(grad_out, spikes)
    return _grad_weight_t_default(grad_out, spikes)


# backend="auto" on CPU computes a mask this dense as the dense product times the mask: one dot
# product per listed input stops paying. Measured (2 cores, [3200 x 1024] @ [1024 x 1024], ms,
# masked vs dense): 10% 14.6 vs 38.8, 20% 32.3 vs 33.5, 30% 38.4 vs 33.5, 50% 60.6 vs 33.5.
MASKED_MAX_DENSITY = 0.2


def _grad_spikes(path, adaptive, grad_out, weight, grad_mask):
    """grad_out @ weight: dense, or only at grad_mask's nonzeros (zero elsewhere), where the C++
    and Triton kernels compute one dot product per listed input; adaptive (auto) on CPU takes the
    dense product times the mask above MASKED_MAX_DENSITY."""
    if grad_mask is None:
        return grad_out @ weight  # dense: every input receives gradient
    if path == "cpp" and adaptive and mask_denser_than(grad_mask, MASKED_MAX_DENSITY):
        path = "reference"
    if path == "cpp":
        out = empty_output(grad_out, (grad_out.shape[0], weight.shape[1]))
        cpp().spike_linear_grad_input_masked(
            _numpy(grad_mask),
            _numpy(grad_out),
            _packed_weight(weight).numpy(),  # the forward's, cached for this weight version
            out.numpy(),
            torch.get_num_threads(),
        )
        return out
    if path == "triton":
        return require_triton_kernels("spike_linear").grad_input_masked(grad_out, weight, grad_mask)
    return (grad_out @ weight) * grad_mask.to(grad_out.dtype)


def _save(ctx, route, inputs, outputs, eager):
    spikes, weight, bias, grad_mask = inputs
    ctx.has_bias = bias is not None
    needs_spikes, needs_weight = ctx.input_needs[0], ctx.input_needs[1]
    if needs_weight and eager:
        spikes = as_bytes_if_binary(spikes, route.backend)
    # keep only what the requested gradients read
    ctx.save_for_backward(
        spikes if needs_weight else None,
        weight if needs_spikes else None,
        outputs[1],
        grad_mask if needs_spikes else None,
    )


def _backward(ctx, grads, compiled):
    """Gradients of (spikes, weight, bias, grad_mask)."""
    grad_out = grads[0]
    spikes, weight, nnz, grad_mask = ctx.saved_tensors
    grad_spikes = grad_weight = grad_bias = None
    if ctx.input_needs[0]:
        if compiled and grad_mask is not None:
            grad_spikes = torch.ops.sparsespike.spike_linear_grad_input(grad_out, weight, grad_mask, ctx.route.backend)
        else:
            grad_spikes = _grad_spikes(ctx.route.path, ctx.route.adaptive, grad_out, weight, grad_mask)
    if ctx.input_needs[1]:
        if compiled:
            gwt = torch.ops.sparsespike.spike_linear_grad_weight(grad_out, spikes, nnz, ctx.route.backend)
        else:
            gwt = _grad_weight_t(ctx.route.path, ctx.route.adaptive, grad_out, spikes, nnz)
        grad_weight = gwt.t()
    if ctx.has_bias and ctx.input_needs[2]:
        grad_bias = grad_out.sum(0)
    return grad_spikes, grad_weight, grad_bias, None


# --------------------------------------------------------------------------- torch.library custom ops
# What torch.compile traces and opcheck checks: torch.ops.sparsespike.spike_linear(_grad_weight).


@torch.library.custom_op("sparsespike::spike_linear", mutates_args=())
def _spike_linear_op(
    spikes: Tensor, weight: Tensor, bias: Optional[Tensor], grad_mask: Optional[Tensor], backend: str
) -> tuple[Tensor, Tensor]:
    """(spikes [R, in] @ weight^T + bias, number of nonzero spikes); grad_mask shapes the backward."""
    route = SPIKE_LINEAR.route(backend, weight)
    return _forward(route.path, route.adaptive, spikes, weight, bias)


@torch.library.custom_op("sparsespike::spike_linear_grad_weight", mutates_args=())
def _grad_weight_op(grad_out: Tensor, spikes: Tensor, nnz: Tensor, backend: str) -> Tensor:
    """spikes^T @ grad_out, [in, out] (the weight gradient, transposed)."""
    route = SPIKE_LINEAR.route(backend, grad_out)
    # a plain [in, out] array, as the fake says (the eager path may return a transposed view)
    return _grad_weight_t(route.path, route.adaptive, grad_out, spikes, nnz).contiguous()


@torch.library.custom_op("sparsespike::spike_linear_grad_input", mutates_args=())
def _grad_input_op(grad_out: Tensor, weight: Tensor, grad_mask: Tensor, backend: str) -> Tensor:
    """grad_out @ weight at grad_mask's nonzeros, zero elsewhere ([R, in])."""
    route = SPIKE_LINEAR.route(backend, grad_out)
    return _grad_spikes(route.path, route.adaptive, grad_out, weight, grad_mask)


@_grad_input_op.register_fake
def _grad_input_fake(grad_out, weight, grad_mask, backend):
    return grad_out.new_empty((grad_out.shape[0], weight.shape[1]))


@_spike_linear_op.register_fake
def _spike_linear_fake(spikes, weight, bias, grad_mask, backend):
    out = spikes.new_empty((spikes.shape[0], weight.shape[0]), dtype=weight.dtype)
    return out, spikes.new_empty((), dtype=torch.int64)


@_grad_weight_op.register_fake
def _grad_weight_fake(grad_out, spikes, nnz, backend):
    return grad_out.new_empty((spikes.shape[1], grad_out.shape[1]))


SPIKE_LINEAR = KernelOp.spike_layer(
    "spike_linear", forward=_forward, save=_save, backward=_backward, custom_op=_spike_linear_op
)
"""spike_linear's kernels in the op framework; public so that ops built on it (modern_hopfield's
event-driven scores) call it: ``SPIKE_LINEAR(route, spikes, weight, bias, grad_mask) -> (out, nnz)``."""


# --------------------------------------------------------------------------- public entry point


def _validate(spikes, weight, bias, grad_mask) -> None:
    require_tensor(spikes, "spikes")
    require_weight(weight, 2, "[out_features, in_features]")
    if spikes.dim() < 1:
        raise ValueError("spikes must have at least one dimension (the last is in_features)")
    if spikes.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"spikes has {spikes.shape[-1]} features in its last dimension but weight expects "
            f"in_features={weight.shape[1]} (weight shape {tuple(weight.shape)})"
        )
    require_layer_operands(spikes, weight, bias)
    if grad_mask is not None:
        require_grad_mask(grad_mask, spikes)


def spike_linear(
    spikes: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    *,
    grad_mask: Optional[Tensor] = None,
    backend: Optional[str] = None,
) -> Tensor:
    """``F.linear(spikes, weight, bias)``, propagating only the nonzero spikes.

    Args:
        spikes: [..., in_features]; bool, uint8 or the weight's float dtype; graded (non-binary)
            values are allowed, the kernels work over the nonzeros.
        weight: [out_features, in_features], floating point.
        bias: optional [out_features].
        grad_mask: optional bool/uint8 tensor of the spikes' shape: the gradient to the spikes is
            computed only at its nonzeros and is zero elsewhere (e.g. the band-active set of the
            LIF layer that produced the spikes, where the rest would meet a zero surrogate). The
            forward does not change.
        backend: "auto" (default, per call: event-driven or dense), "reference", "cpp" (CPU) or
            "triton" (CUDA, or CPU under TRITON_INTERPRET=1). None uses the process default
            (``sparsespike.set_default_backend`` or ``$SPARSESPIKE_BACKEND``).

    Returns:
        [..., out_features] in the weight's dtype.
    """
    _validate(spikes, weight, bias, grad_mask)
    route = SPIKE_LINEAR.route(resolve_backend(backend, weight.device), weight)
    out_features, in_features = weight.shape
    mask = None if grad_mask is None else grad_mask.reshape(-1, in_features)
    out, nnz = SPIKE_LINEAR(route, spikes.reshape(-1, in_features), weight, bias, mask)
    record_synops("spike_linear", nnz, out_features)
    return out.reshape(*spikes.shape[:-1], out_features)
