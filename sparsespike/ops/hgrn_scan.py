"""hgrn_scan: the HGRN gated linear recurrence over time, h_t = exp(g_t) * h_{t-1} + x_t.

HGRN (Qin et al., NeurIPS 2023) mixes tokens with this element-wise recurrence; g is the log of
the forget gate, so g <= 0 (g > 0 raises: exp(g) > 1 grows the state without bound). Three implementations behind
:func:`hgrn_scan`:

- reference: a differentiable torch loop over time (the oracle; backward by autograd on it; it
  is called directly, never through the custom ops, which run the kernels).
- cpp (CPU): one pass over T forward and one reverse pass backward, parallel over neuron
  blocks, vectorised over contiguous neurons (``csrc/hgrn_scan.cpp``); exp is a vectorised polynomial
  in float32 (within 2 ulp of torch.exp) and std::exp in float64, so results agree with the
  reference to rounding, not bit for bit.
- triton (CUDA, or CPU under TRITON_INTERPRET=1): the same recurrences, one program per block
  of neurons with the time loop inside (``kernels/hgrn_scan.py``).

Backward, in reverse time: a_t = dL/dh_t + exp(g_{t+1}) a_{t+1} (dL/dh_final joins at the last
step); dx_t = a_t, dg_t = a_t exp(g_t) h_{t-1}, dh0 = exp(g_0) a_0. Saved for backward: g (an
input, not copied), h (the output itself) and h0; nothing is recomputed.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .._backend import cpp, empty_output, require_triton_kernels, resolve_backend, step_gradient_view
from .._backend import numpy_view as _np
from ._framework import KernelOp
from ._validate import (
    check_finite,
    data_checked,
    require_same_device,
    require_tensor,
    require_time_major,
)

__all__ = ["HGRN_SCAN", "HGRNOutput", "hgrn_scan", "hgrn_scan_reference"]


class HGRNOutput(NamedTuple):
    h: Tensor  # [T, ...] every state
    h_final: Tensor  # [...] the state after the last step


# --------------------------------------------------------------------------- reference


def hgrn_scan_reference(x: Tensor, g: Tensor, h0: Optional[Tensor] = None) -> HGRNOutput:
    """The oracle: a plain loop over time, h_t = exp(g_t) * h_{t-1} + x_t. Differentiable.
    (The steps come from unbind: indexing x[t] would make autograd build a full-size zero
    gradient per step.)"""
    h = torch.zeros_like(x[0]) if h0 is None else h0
    states = []
    for x_t, g_t in zip(x.unbind(0), g.unbind(0)):
        h = torch.exp(g_t) * h + x_t
        states.append(h)
    return HGRNOutput(torch.stack(states), h)


# --------------------------------------------------------------------------- C++ (CPU)


def _cpp_forward(x: Tensor, g: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    h, h_final = empty_output(x), torch.empty_like(h0)
    cpp().hgrn_scan_forward(_np(x), _np(g), _np(h0), h.numpy(), h_final.numpy(), torch.get_num_threads())
    return h, h_final


def _cpp_backward(grad_h, grad_h_final, g, h, h0) -> tuple[Tensor, Tensor, Tensor]:
    grads = (empty_output(g), empty_output(g), torch.empty_like(h0))
    final = None if grad_h_final is None else _np(grad_h_final)
    inputs = (step_gradient_view(grad_h), final, _np(g), _np(h), _np(h0))
    cpp().hgrn_scan_backward(*inputs, *(t.numpy() for t in grads), torch.get_num_threads())
    return grads


# --------------------------------------------------------------------------- dispatch per device


def _check_data(x: Tensor, g: Tensor, h0: Tensor) -> None:
    """What the C++ kernel checks while it reads, for the other paths: finite inputs, g <= 0."""
    for t, name in ((x, "x"), (g, "g"), (h0, "h0")):
        check_finite(t, name)
    if torch.compiler.is_compiling() or not data_checked(g):
        return
    if bool((g > 0).any()):
        raise ValueError(
            "g must be <= 0 everywhere (the log of a forget gate in (0, 1]); exp(g) > 1 makes the state grow without bound"
        )


def _forward_impl(x: Tensor, g: Tensor, h0: Tensor, path: str) -> tuple[Tensor, Tensor]:
    if path == "triton":
        _check_data(x, g, h0)
        return require_triton_kernels("hgrn_scan").forward(x, g, h0)
    return _cpp_forward(x, g, h0)


def _backward_impl(grad_h, grad_h_final, g, h, h0, path: str) -> tuple[Tensor, Tensor, Tensor]:
    if path == "triton":
        return require_triton_kernels("hgrn_scan").backward(grad_h, grad_h_final, g, h, h0)
    return _cpp_backward(grad_h, grad_h_final, g, h, h0)


def _forward(path, adaptive, x, g, h0):
    """(h [T, M], h_final [M]) of x, g [T, M] from h0 [M] on one path."""
    if path == "reference":
        _check_data(x, g, h0)
        return hgrn_scan_reference(x, g, h0)
    return _forward_impl(x, g, h0, path)


def _save(ctx, route, inputs, outputs, eager):
    _, g, h0 = inputs
    ctx.save_for_backward(g, outputs[0], h0)  # g and h0 as given, h the output itself: no copies


def _backward(ctx, grads, compiled):
    """Gradients of (x, g, h0)."""
    g, h, h0 = ctx.saved_tensors
    if compiled:
        return torch.ops.sparsespike.hgrn_scan_backward(*grads, g, h, h0, ctx.route.backend)
    return _backward_impl(*grads, g, h, h0, ctx.route.path)


# --------------------------------------------------------------------------- torch.library custom ops


@torch.library.custom_op("sparsespike::hgrn_scan", mutates_args=())
def _hgrn_op(x: Tensor, g: Tensor, h0: Tensor, backend: str) -> tuple[Tensor, Tensor]:
    """(h [T, M], h_final [M]) of x, g [T, M] from h0 [M]."""
    return _forward_impl(x, g, h0, HGRN_SCAN.kernel_route(backend, x).path)


@_hgrn_op.register_fake
def _hgrn_fake(x, g, h0, backend):
    return torch.empty_like(x), torch.empty_like(h0)


@torch.library.custom_op("sparsespike::hgrn_scan_backward", mutates_args=())
def _hgrn_backward_op(
    grad_h: Optional[Tensor], grad_h_final: Optional[Tensor], g: Tensor, h: Tensor, h0: Tensor, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (x, g, h0) from the output gradients, g, the states h and h0."""
    return _backward_impl(grad_h, grad_h_final, g, h, h0, HGRN_SCAN.kernel_route(backend, g).path)


@_hgrn_backward_op.register_fake
def _hgrn_backward_fake(grad_h, grad_h_final, g, h, h0, backend):
    return torch.empty_like(g), torch.empty_like(g), torch.empty_like(h0)


HGRN_SCAN = KernelOp("hgrn_scan", forward=_forward, what="inputs", save=_save, backward=_backward, custom_op=_hgrn_op)


# --------------------------------------------------------------------------- public entry point


def _check_args(x: Tensor, g: Tensor, h0: Optional[Tensor]) -> None:
    require_time_major(x, "x")
    require_tensor(g, "g")
    if g.shape != x.shape:
        raise ValueError(f"g must have x's shape {tuple(x.shape)}, got {tuple(g.shape)}")
    if g.dtype != x.dtype:
        raise TypeError(f"g must have x's dtype {x.dtype}, got {g.dtype}")
    require_same_device(g, "g", x, "x")
    if h0 is not None:
        require_tensor(h0, "h0")
        if h0.shape != x.shape[1:]:
            raise ValueError(f"h0 must have the state shape x.shape[1:] = {tuple(x.shape[1:])}, got {tuple(h0.shape)}")
        if h0.dtype != x.dtype:
            raise TypeError(f"h0 must have x's dtype {x.dtype}, got {h0.dtype}")
        require_same_device(h0, "h0", x, "x")


def hgrn_scan(x: Tensor, g: Tensor, h0: Optional[Tensor] = None, *, backend: Optional[str] = None) -> HGRNOutput:
    """The HGRN recurrence h_t = exp(g_t) * h_{t-1} + x_t, element-wise, over the leading
    (time) dimension of ``x`` ([T, ...], time-major).

    Args:
        x: input [T, ...], floating point (the HGRN candidate, already scaled by 1 - f).
        g: log of the forget gate, x's shape and dtype, <= 0.
        h0: initial state [...] (zeros by default); the gradient flows to it.
        backend: "auto", "reference", "cpp", "triton", or None for the process default.

    Returns:
        HGRNOutput(h [T, ...] every state, h_final [...] the last one).

    NaN or Inf in x, g or h0, and g > 0, raise ValueError (on CUDA only with
    SPARSESPIKE_CHECK_FINITE=1; the C++ kernel checks while it reads).
    """
    _check_args(x, g, h0)
    route = HGRN_SCAN.route(resolve_backend(backend, x.device), x)
    steps, state_shape = x.shape[0], x.shape[1:]
    flat_x, flat_g = x.reshape(steps, -1), g.reshape(steps, -1)
    flat_h0 = x.new_zeros(flat_x.shape[1]) if h0 is None else h0.reshape(-1)
    h, h_final = HGRN_SCAN(route, flat_x, flat_g, flat_h0)
    return HGRNOutput(h.reshape(x.shape), h_final.reshape(state_shape))
