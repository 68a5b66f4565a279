"""spike_conv2d: event-driven 2-D convolution of spike maps, equal to ``F.conv2d`` (NCHW).

Three implementations behind one entry point, :func:`spike_conv2d`:

- reference: ``F.conv2d`` on the spikes cast to the weight's dtype; the oracle.
- cpp (CPU): every image's nonzero inputs are compacted and grouped by pixel; each output row
  is accumulated channels-last in a small scratch: every active input pixel of the rows its
  kernel reaches adds, per kernel tap landing inside the output, the sum of its events' kernel
  slices weight[:, c, ky, kx] (rows of a cached [C_in, KH, KW, C_out] copy of the weight),
  output channels vectorised; then the row is transposed to NCHW (``csrc/spike_conv2d.cpp``).
  Silent inputs cost nothing. Parallel over images; deterministic.
- triton (CUDA, or CPU under TRITON_INTERPRET=1): a gather per output pixel over ELL lists of
  each input pixel's active channels (``kernels/spike_conv2d.py``). Not yet measured on a GPU.

``backend="auto"`` (the default) picks per call between the event-driven kernel and torch's
conv2d (oneDNN on CPU, cuDNN on GPU): event-driven while the input density times
``conv_width_factor(C_out)`` (1 + 64 / C_out: narrow layers pay more per event) is at most the
device's ``conv_forward_density`` / ``conv_backward_density`` (``sparsespike.dispatch``; on CPU
the forward samples 16 images, the weight gradient uses the forward's exact count; on CUDA the
previous call's density through the same weight). Backward: the weight gradient sums over
active inputs only (deterministic, no atomics); the input gradient is torch's dense transposed
convolution, or with ``grad_mask`` only the mask's entries (C++ and Triton: one sum of dot
products per listed input, zero elsewhere), and is skipped when the spikes do not require grad;
the bias gradient is a sum.

groups > 1 runs the reference (F.conv2d) with a one-time warning.

SynOps are exact: an active input delivers to C_out / groups outputs per kernel tap that maps it
inside the output, so an input near the border (or skipped by the stride) reaches fewer. Every
call reports that count ("reach" x C_out) into any active ``sparsespike.count_synops()``.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .._backend import cpp, empty_output, require_triton_kernels, resolve_backend
from .._backend import numpy_view as _numpy
from ..dispatch import conv_width_factor, density_history, get_crossover, mask_denser_than
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
from ._weight_cache import content_fingerprint, weight_cache

__all__ = ["SPIKE_CONV2D", "spike_conv2d", "spike_conv2d_reference"]

_DENSITY_SAMPLE_IMAGES = 16

IntPair = Union[int, Sequence[int]]


# --------------------------------------------------------------------------- reference


def spike_conv2d_reference(
    spikes: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: Union[IntPair, str] = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """The oracle: F.conv2d of the spikes (cast to the weight's dtype). Differentiable."""
    x = spikes if spikes.dtype == weight.dtype else spikes.to(weight.dtype)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _as_dense(spikes: Tensor, dtype: torch.dtype) -> Tensor:
    return spikes if spikes.dtype == dtype else spikes.to(dtype)


def _symmetric(padding: Sequence[int]) -> bool:
    top, bottom, left, right = padding
    return top == bottom and left == right


def _dense_forward(spikes, weight, bias, stride, padding, dilation):
    """torch's conv2d; padding is [top, bottom, left, right]."""
    x = _as_dense(spikes, weight.dtype)
    top, bottom, left, right = padding
    if _symmetric(padding):
        return F.conv2d(x, weight, bias, stride, (top, left), dilation)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation)


def _padded_call(shape, padding):
    """(input shape torch sees, the padding it gets, slices back to the real input or None)."""
    top, bottom, left, right = padding
    if _symmetric(padding):
        return tuple(shape), [top, left], None
    n, c, h, w = shape
    return (n, c, h + top + bottom, w + left + right), [0, 0], (slice(top, top + h), slice(left, left + w))


def _dense_grad_input(grad_out, weight, input_shape, stride, padding, dilation):
    """The input gradient: torch's transposed convolution (dense: every input receives one)."""
    shape, pad, crop = _padded_call(input_shape, padding)
    like = grad_out.new_empty(1).expand(shape)
    grad = torch.ops.aten.convolution_backward(
        grad_out, like, weight, None, list(stride), pad, list(dilation), False, [0, 0], 1, [True, False, False]
    )[0]
    return grad if crop is None else grad[..., crop[0], crop[1]]


def _dense_grad_weight(grad_out, spikes, kernel_size, stride, padding, dilation):
    x = _as_dense(spikes, grad_out.dtype)
    top, bottom, left, right = padding
    _, pad, _ = _padded_call(x.shape, padding)
    if not _symmetric(padding):
        x = F.pad(x, (left, right, top, bottom))
    like = grad_out.new_empty(1).expand(grad_out.shape[1], x.shape[1], *kernel_size)
    return torch.ops.aten.convolution_backward(
        grad_out, x, like, None, list(stride), pad, list(dilation), False, [0, 0], 1, [False, True, False]
    )[1]


def _axis_reach(size, taps, stride, pad, dil, n_out, device):
    """Per input row (or column): the kernel taps that carry it to a valid output position."""
    i = torch.arange(size, device=device)[:, None]
    num = i + pad - torch.arange(taps, device=device)[None, :] * dil
    valid = (num >= 0) & (num % stride == 0) & (num // stride < n_out)
    return valid.sum(1)


def _counts_from_pixels(per_pixel, kernel_size, stride, padding, dilation, out_size):
    """int64 [nnz, reach] from the active inputs per pixel [H, W] (summed over images and
    channels); reach = (active input, kernel tap) pairs that land inside the output."""
    h, w = per_pixel.shape
    per_pixel = per_pixel.to(torch.int64)
    fy = _axis_reach(h, kernel_size[0], stride[0], padding[0], dilation[0], out_size[0], per_pixel.device)
    fx = _axis_reach(w, kernel_size[1], stride[1], padding[2], dilation[1], out_size[1], per_pixel.device)
    reach = (per_pixel * fy[:, None] * fx[None, :]).sum()
    return torch.stack([per_pixel.sum(), reach])


def _counts_torch(spikes, kernel_size, stride, padding, dilation, out_size):
    per_pixel = (spikes != 0).sum((0, 1), dtype=torch.int64)
    return _counts_from_pixels(per_pixel, kernel_size, stride, padding, dilation, out_size)


def _out_size(spikes, kernel_size, stride, padding, dilation):
    h, w = spikes.shape[-2:]
    return (
        (h + padding[0] + padding[1] - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1,
        (w + padding[2] + padding[3] - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1,
    )


def _counts(spikes, kernel_size, stride, padding, dilation):
    """[nnz, reach] of the spikes after the non-finite check (one C++ pass on CPU when available)."""
    out_size = _out_size(spikes, kernel_size, stride, padding, dilation)
    if spikes.device.type == "cpu" and spikes.dtype in CPP_SPIKE_DTYPES and cpp() is not None:
        nnz, reach = cpp().spike_conv2d_scan(
            _numpy(spikes),
            list(kernel_size),
            list(stride),
            [padding[0], padding[2]],
            list(dilation),
            list(out_size),
            torch.get_num_threads(),
        )
        return torch.tensor([nnz, reach], dtype=torch.int64)
    check_finite(spikes)
    return _counts_torch(spikes, kernel_size, stride, padding, dilation, out_size)


# --------------------------------------------------------------------------- C++ (CPU)


def _packed_weight(weight: Tensor) -> Tensor:
    def build(w: Tensor) -> Tensor:
        c_out, c_in, kh, kw = w.shape
        cpad = cpp().spike_conv2d_padded_width(c_out, w.element_size())
        packed = torch.empty((c_in * kh * kw, cpad), dtype=w.dtype)
        cpp().spike_conv2d_pack_weight(_numpy(w), packed.numpy(), torch.get_num_threads())
        return packed

    return weight_cache.get(weight, "cpp-conv-packed", build, content_fingerprint)


def _cpp_forward(spikes, weight, bias, stride, padding, dilation):
    out_size = _out_size(spikes, weight.shape[2:], stride, padding, dilation)
    out = empty_output(weight, (spikes.shape[0], weight.shape[0], *out_size))
    nnz, reach = cpp().spike_conv2d_forward(
        _numpy(spikes),
        _packed_weight(weight).numpy(),
        None if bias is None else _numpy(bias),
        out.numpy(),
        list(weight.shape[2:]),
        list(stride),
        [padding[0], padding[2]],
        list(dilation),
        torch.get_num_threads(),
    )
    return out, torch.tensor([nnz, reach], dtype=torch.int64)


def _cpp_grad_weight_t(grad_out, spikes, kernel_size, stride, padding, dilation):
    c_in = spikes.shape[1]
    gwt = torch.empty((c_in * kernel_size[0] * kernel_size[1], grad_out.shape[1]), dtype=grad_out.dtype)
    cpp().spike_conv2d_grad_weight(
        _numpy(spikes),
        _numpy(grad_out),
        gwt.numpy(),
        list(kernel_size),
        list(stride),
        [padding[0], padding[2]],
        list(dilation),
        torch.get_num_threads(),
    )
    return gwt


def _sampled_density(spikes: Tensor) -> float:
    """Fraction of nonzeros in at most 16 evenly spaced images (cheap next to either path)."""
    n = spikes.shape[0]
    sample = spikes
    if n > _DENSITY_SAMPLE_IMAGES:
        sample = spikes.index_select(0, torch.linspace(0, n - 1, _DENSITY_SAMPLE_IMAGES, dtype=torch.float64).long())
    flat = sample.reshape(sample.shape[0], -1)
    return cpp().spikes_count(_numpy(flat), 1) / flat.numel()


# --------------------------------------------------------------------------- Triton


def _weight_t(weight: Tensor) -> Tensor:
    # [C_in * KH * KW, C_out], rebuilt per call: on a GPU the permute costs microseconds
    return weight.permute(1, 2, 3, 0).reshape(-1, weight.shape[0]).contiguous()


def _triton_forward(spikes, weight, bias, stride, padding, dilation):
    check_finite(spikes)
    kernel_size = tuple(weight.shape[2:])
    out_size = _out_size(spikes, kernel_size, stride, padding, dilation)
    out, per_pixel = require_triton_kernels("spike_conv2d").forward(
        spikes,
        _weight_t(weight),
        bias,
        kernel_size,
        tuple(stride),
        (padding[0], padding[2]),
        tuple(dilation),
        out_size,
    )
    per_pixel = per_pixel.sum(0, dtype=torch.int64)
    return out, _counts_from_pixels(per_pixel, kernel_size, stride, padding, dilation, out_size)


def _triton_grad_weight_t(grad_out, spikes, kernel_size, stride, padding, dilation):
    return require_triton_kernels("spike_conv2d").grad_weight_t(
        grad_out,
        spikes,
        tuple(kernel_size),
        tuple(stride),
        (padding[0], padding[2]),
        tuple(dilation),
    )


def _site(weight: Tensor) -> tuple:
    return ("spike_conv2d", weight.data_ptr(), tuple(weight.shape))


# --------------------------------------------------------------------------- forward and backward per path


def _forward_default(spikes, weight, bias, stride, padding, dilation):
    counts = _counts(spikes, weight.shape[2:], stride, padding, dilation)  # validates before the conv runs
    return _dense_forward(spikes, weight, bias, stride, padding, dilation), counts


def _cpu_event_driven(spikes, weight) -> bool:
    density = _sampled_density(spikes) * conv_width_factor(weight.shape[0])
    return density <= get_crossover("cpu").conv_forward_density


def _triton_adaptive_forward(spikes, weight, bias, stride, padding, dilation):
    """backend="auto" on CUDA: by the density of the previous call through this weight."""
    density = density_history.estimate(_site(weight))
    crossover = get_crossover("cuda").conv_forward_density
    if density is not None and density * conv_width_factor(weight.shape[0]) <= crossover:
        out, counts = _triton_forward(spikes, weight, bias, stride, padding, dilation)
    else:
        out, counts = _forward_default(spikes, weight, bias, stride, padding, dilation)
    density_history.record(_site(weight), counts[0], spikes.numel())
    return out, counts


def _forward(path, adaptive, spikes, weight, bias, stride, padding, dilation, grad_mask=None):
    """(conv2d(spikes, weight) + bias, int64 [nonzeros, reach]) on one path; grad_mask only
    shapes the backward (on the reference path, through the graph)."""
    if path == "reference" and grad_mask is not None and spikes.requires_grad:
        spikes = torch.where(grad_mask.bool(), spikes, spikes.detach())  # gradient only at the mask
    if path == "cpp" and (not adaptive or _cpu_event_driven(spikes, weight)):
        return _cpp_forward(spikes, weight, bias, stride, padding, dilation)
    if path == "triton":
        if adaptive:
            return _triton_adaptive_forward(spikes, weight, bias, stride, padding, dilation)
        return _triton_forward(spikes, weight, bias, stride, padding, dilation)
    return _forward_default(spikes, weight, bias, stride, padding, dilation)


def _grad_weight_t_default(grad_out, spikes, kernel_size, stride, padding, dilation):
    grad = _dense_grad_weight(grad_out, spikes, kernel_size, stride, padding, dilation)
    return grad.permute(1, 2, 3, 0).reshape(-1, grad.shape[0]).contiguous()


def _grad_weight_t(path, adaptive, grad_out, spikes, counts, kernel_size, stride, padding, dilation):
    """The weight gradient as [C_in * KH * KW, C_out] on one path; adaptive goes event-driven
    only below the backward crossover density."""
    geometry = (kernel_size, stride, padding, dilation)
    if path == "cpp":
        density = int(counts[0]) / spikes.numel() * conv_width_factor(grad_out.shape[1])
        if not adaptive or density <= get_crossover("cpu").conv_backward_density:
            return _cpp_grad_weight_t(grad_out, spikes, *geometry)
    elif path == "triton":
        event_driven = True
        if adaptive:  # CUDA: the density the previous backward of this shape saw
            site = ("spike_conv2d_grad", tuple(spikes.shape), tuple(kernel_size))
            density = density_history.estimate(site)
            event_driven = (
                density is not None
                and density * conv_width_factor(grad_out.shape[1]) <= get_crossover("cuda").conv_backward_density
            )
            density_history.record(site, counts[0], spikes.numel())
        if event_driven:
            return _triton_grad_weight_t(grad_out, spikes, *geometry)
    return _grad_weight_t_default(grad_out, spikes, *geometry)


# backend="auto" on CPU computes a mask this dense as the dense transposed convolution times the
# mask. Measured (2 cores, [200, 64, 34, 34] from [200, 128, 34, 34], 3x3, ms, masked vs dense):
# 30% 134.0 vs 225.8, 50% 216.6 vs 225.8.
MASKED_MAX_DENSITY = 0.4


def _grad_spikes(path, adaptive, grad_out, weight, grad_mask, input_shape, stride, padding, dilation):
    """The input gradient: dense, or only at grad_mask's nonzeros (zero elsewhere); adaptive (auto)
    on CPU takes the dense one times the mask above MASKED_MAX_DENSITY."""
    if grad_mask is None:
        return _dense_grad_input(grad_out, weight, input_shape, stride, padding, dilation)
    if path == "cpp" and adaptive and mask_denser_than(grad_mask, MASKED_MAX_DENSITY):
        path = "reference"
    if path == "cpp":
        out = empty_output(grad_out, input_shape)
        cpp().spike_conv2d_grad_input_masked(
            _numpy(grad_mask),
            _numpy(grad_out),
            _packed_weight(weight).numpy(),  # the forward's, cached for this weight version
            out.numpy(),
            list(weight.shape[2:]),
            list(stride),
            [padding[0], padding[2]],
            list(dilation),
            torch.get_num_threads(),
        )
        return out
    if path == "triton":
        return require_triton_kernels("spike_conv2d").grad_input_masked(
            grad_out,
            _weight_t(weight),
            grad_mask,
            tuple(weight.shape[2:]),
            tuple(stride),
            (padding[0], padding[2]),
            tuple(dilation),
        )
    grad = _dense_grad_input(grad_out, weight, input_shape, stride, padding, dilation)
    return grad * grad_mask.to(grad.dtype)


def _save(ctx, route, inputs, outputs, eager):
    spikes, weight, bias, stride, padding, dilation, grad_mask = inputs
    ctx.has_bias = bias is not None
    ctx.input_shape = tuple(spikes.shape)
    ctx.kernel_size = tuple(weight.shape[2:])
    ctx.stride, ctx.padding, ctx.dilation = tuple(stride), tuple(padding), tuple(dilation)
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
    """Gradients of (spikes, weight, bias, stride, padding, dilation, grad_mask)."""
    spikes, weight, counts, grad_mask = ctx.saved_tensors
    grad_spikes = grad_weight = grad_bias = None
    grad_out = grads[0].contiguous()
    geometry = (ctx.stride, ctx.padding, ctx.dilation)
    if ctx.input_needs[0]:
        if compiled and grad_mask is not None:
            grad_spikes = torch.ops.sparsespike.spike_conv2d_grad_input(
                grad_out, weight, grad_mask, *geometry, ctx.route.backend
            )
        else:
            grad_spikes = _grad_spikes(
                ctx.route.path, ctx.route.adaptive, grad_out, weight, grad_mask, ctx.input_shape, *geometry
            )
    if ctx.input_needs[1]:
        if compiled:
            gwt = torch.ops.sparsespike.spike_conv2d_grad_weight(
                grad_out, spikes, counts, ctx.kernel_size, *geometry, ctx.route.backend
            )
        else:
            gwt = _grad_weight_t(
                ctx.route.path, ctx.route.adaptive, grad_out, spikes, counts, ctx.kernel_size, *geometry
            )
        grad_weight = gwt.t().reshape(grad_out.shape[1], ctx.input_shape[1], *ctx.kernel_size)
    if ctx.has_bias and ctx.input_needs[2]:
        grad_bias = grad_out.sum((0, 2, 3))
    return grad_spikes, grad_weight, grad_bias, None, None, None, None


# --------------------------------------------------------------------------- torch.library custom ops
# What torch.compile traces and opcheck checks: torch.ops.sparsespike.spike_conv2d(_grad_weight).
# padding is [top, bottom, left, right].


@torch.library.custom_op("sparsespike::spike_conv2d", mutates_args=())
def _spike_conv2d_op(
    spikes: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    grad_mask: Optional[Tensor],
    backend: str,
) -> tuple[Tensor, Tensor]:
    """(conv2d(spikes, weight) + bias, int64 [nonzeros, reach]); grad_mask shapes the backward."""
    route = SPIKE_CONV2D.route(backend, weight)
    return _forward(route.path, route.adaptive, spikes, weight, bias, stride, padding, dilation)


@torch.library.custom_op("sparsespike::spike_conv2d_grad_weight", mutates_args=())
def _grad_weight_op(
    grad_out: Tensor,
    spikes: Tensor,
    counts: Tensor,
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    backend: str,
) -> Tensor:
    """The weight gradient as [C_in * KH * KW, C_out] (weight.permute(1, 2, 3, 0))."""
    route = SPIKE_CONV2D.route(backend, grad_out)
    return _grad_weight_t(route.path, route.adaptive, grad_out, spikes, counts, kernel_size, stride, padding, dilation)


@torch.library.custom_op("sparsespike::spike_conv2d_grad_input", mutates_args=())
def _grad_input_op(
    grad_out: Tensor,
    weight: Tensor,
    grad_mask: Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    backend: str,
) -> Tensor:
    """The input gradient at grad_mask's nonzeros, zero elsewhere ([N, C_in, H, W])."""
    route = SPIKE_CONV2D.route(backend, grad_out)
    shape = tuple(grad_mask.shape)
    return _grad_spikes(route.path, route.adaptive, grad_out, weight, grad_mask, shape, stride, padding, dilation)


@_grad_input_op.register_fake
def _grad_input_fake(grad_out, weight, grad_mask, stride, padding, dilation, backend):
    return grad_out.new_empty(tuple(grad_mask.shape))


@_spike_conv2d_op.register_fake
def _spike_conv2d_fake(spikes, weight, bias, stride, padding, dilation, grad_mask, backend):
    out_size = _out_size(spikes, weight.shape[2:], stride, padding, dilation)
    out = spikes.new_empty((spikes.shape[0], weight.shape[0], *out_size), dtype=weight.dtype)
    return out, spikes.new_empty((2,), dtype=torch.int64)


@_grad_weight_op.register_fake
def _grad_weight_fake(grad_out, spikes, counts, kernel_size, stride, padding, dilation, backend):
    return grad_out.new_empty((spikes.shape[1] * kernel_size[0] * kernel_size[1], grad_out.shape[1]))


SPIKE_CONV2D = KernelOp.spike_layer(
    "spike_conv2d", forward=_forward, save=_save, backward=_backward, custom_op=_spike_conv2d_op
)


# --------------------------------------------------------------------------- public entry point


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        pair = (value[0], value[1])
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return pair


def _geometry(spikes_shape, weight_shape, stride, padding, dilation):
    """(stride, [top, bottom, left, right], dilation), checked against the shapes."""
    stride = _pair(stride, "stride", 1)
    dilation = _pair(dilation, "dilation", 1)
    kh, kw = weight_shape[2:]
    extent = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))  # dilated kernel size - 1
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1 (as in F.conv2d), got stride={stride}")
            # as torch: any odd remainder goes to the bottom / right
            pads = (extent[0] // 2, extent[0] - extent[0] // 2, extent[1] // 2, extent[1] - extent[1] // 2)
        else:
            raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = _pair(padding, "padding", 0)
        if ph > extent[0] or pw > extent[1]:
            raise ValueError(
                f"padding {padding!r} is larger than allowed: at most dilation * (kernel_size - 1) = "
                f"{extent} per side (height, width), beyond which whole output rows or columns see "
                f"only padding"
            )
        pads = (ph, ph, pw, pw)
    h, w = spikes_shape[-2:]
    if h + pads[0] + pads[1] < extent[0] + 1 or w + pads[2] + pads[3] < extent[1] + 1:
        raise ValueError(
            f"spikes of size {h}x{w} (padded {h + pads[0] + pads[1]}x{w + pads[2] + pads[3]}) are smaller "
            f"than the dilated kernel of weight ({extent[0] + 1}x{extent[1] + 1})"
        )
    return list(stride), list(pads), list(dilation)


def _validate(spikes, weight, bias, groups, grad_mask) -> None:
    require_tensor(spikes, "spikes")
    require_weight(weight, 4, "[C_out, C_in / groups, KH, KW]")
    if spikes.dim() < 4:
        hint = " (one image: add a batch dimension, spikes[None])" if spikes.dim() == 3 else ""
        raise ValueError(
            f"spikes must be 4-D [N, C_in, H, W] (or [..., C_in, H, W]), got shape {tuple(spikes.shape)}{hint}"
        )
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if weight.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide weight's C_out={weight.shape[0]}")
    if spikes.shape[-3] != weight.shape[1] * groups:
        raise ValueError(
            f"spikes has {spikes.shape[-3]} channels (dimension -3) but weight expects "
            f"C_in={weight.shape[1] * groups} (weight shape {tuple(weight.shape)}, groups={groups})"
        )
    require_layer_operands(spikes, weight, bias)
    if grad_mask is not None:
        require_grad_mask(grad_mask, spikes)
        if groups > 1:
            raise ValueError("grad_mask needs groups=1 (groups > 1 runs the dense reference)")


_warned_groups = False


def _grouped(spikes, weight, bias, stride, padding, dilation, groups):
    """groups > 1: the reference (F.conv2d), with exact SynOp counts."""
    global _warned_groups
    if not _warned_groups:
        _warned_groups = True
        warnings.warn("spike_conv2d: groups > 1 runs the dense reference (F.conv2d)", RuntimeWarning, stacklevel=3)
    top, bottom, left, right = padding
    x = _as_dense(spikes, weight.dtype)
    if not _symmetric(padding):
        x, pad = F.pad(x, (left, right, top, bottom)), 0
    else:
        pad = (top, left)
    counts = _counts(spikes.detach(), weight.shape[2:], stride, padding, dilation)
    return F.conv2d(x, weight, bias, stride, pad, dilation, groups), counts


def spike_conv2d(
    spikes: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: Union[IntPair, str] = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    grad_mask: Optional[Tensor] = None,
    backend: Optional[str] = None,
) -> Tensor:
    """``F.conv2d(spikes, weight, bias, stride, padding, dilation, groups)``, propagating only the
    nonzero spikes.

    Args:
        spikes: [N, C_in, H, W] (N may be T*B; more leading dimensions are flattened into N);
            bool, uint8 or the weight's float dtype; graded (non-binary) values are allowed.
        weight: [C_out, C_in / groups, KH, KW], floating point.
        bias: optional [C_out].
        stride, dilation: int or (height, width) pair, >= 1.
        padding: int or (height, width) pair of zero padding on each side, at most
            dilation * (kernel_size - 1) per side (beyond that whole output rows see only
            padding); or "valid" (0) or "same" (stride 1; an odd remainder goes bottom / right).
        groups: 1 runs the event-driven kernels; > 1 runs the reference, with a warning.
        grad_mask: optional bool/uint8 tensor of the spikes' shape: the gradient to the spikes is
            computed only at its nonzeros and is zero elsewhere (e.g. the band-active set of the
            LIF layer that produced the spikes). The forward does not change. groups=1 only.
        backend: "auto" (default, per call: event-driven or torch's conv2d by input density),
            "reference", "cpp" (CPU) or "triton" (CUDA, or CPU under TRITON_INTERPRET=1). None
            uses the process default.

    Returns:
        [N, C_out, H_out, W_out] (with spikes' leading dimensions) in the weight's dtype.
    """
    _validate(spikes, weight, bias, groups, grad_mask)
    stride, padding, dilation = _geometry(spikes.shape, weight.shape, stride, padding, dilation)
    backend = resolve_backend(backend, weight.device)
    lead = spikes.shape[:-3]
    flat = spikes.reshape(-1, *spikes.shape[-3:])
    if groups > 1:
        out, counts = _grouped(flat, weight, bias, stride, padding, dilation, groups)
    else:
        mask = None if grad_mask is None else grad_mask.reshape(flat.shape)
        route = SPIKE_CONV2D.route(backend, weight)
        out, counts = SPIKE_CONV2D(route, flat, weight, bias, stride, padding, dilation, mask)
    record_synops("spike_conv2d", counts[1], weight.shape[0] // groups)
    return out.reshape(*lead, *out.shape[1:])
