"""lif: the leaky integrate-and-fire neuron over all time steps, fused.

Three implementations behind :func:`lif`:

- reference: the Python loop of ``lif_reference.py`` (the oracle; backward by autograd on it;
  it is called directly, never through the custom ops, which run the kernels).
- cpp (CPU): one pass over T forward and one reverse pass backward, parallel over neuron blocks
  (``csrc/lif.cpp``), rounding like the reference op by op, so spikes match it exactly.
- triton (CUDA, or CPU under TRITON_INTERPRET=1): the same recurrences, one program per block of
  neurons with the time loop inside (``kernels/lif.py``).

Saved for backward, 4 bytes per element in fp32 (8 in fp64):
- cpp: the input current only. Each neuron block of the backward recomputes its membrane trace
  with the forward's own code into a per-thread scratch that stays in cache, then runs the
  reverse pass over it; the forward writes nothing but the spikes. With return_trace=True the
  written trace is saved and read instead (and, for SpikingJelly with decay_input, the current
  too: 8 bytes per element).
- triton: the membrane trace (the value compared with the threshold); spikes are recomputed from
  it bit-exactly. The current is kept as well only for the SpikingJelly convention with
  decay_input (its beta gradient reads it), 8 bytes per element then.
beta and threshold gradients come back per element and are summed by autograd over the neurons
that share a parameter, in a fixed order.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from .._backend import cpp, empty_output, require_triton_kernels, resolve_backend, step_gradient_view
from .._backend import numpy_view as _np
from .._checks import require_finite_number
from ._framework import KernelOp, needs_graph
from ._validate import (
    check_finite,
    data_checked,
    require_same_device,
    require_tensor,
    require_time_major,
)
from .lif_reference import CONVENTIONS, DEFAULT_SURROGATE_PARAM, RESETS, SURROGATES, lif_reference

__all__ = ["LIF", "LIFBandOutput", "LIFOutput", "lif"]


class LIFOutput(NamedTuple):
    spikes: Tensor  # [T, ...], 0/1 in the current's dtype
    membrane: Tensor  # [...], the state after the last step
    trace: Optional[Tensor]  # [T, ...] membrane compared with the threshold, if asked for


class LIFBandOutput(NamedTuple):
    """lif(..., return_band=True): LIFOutput and the band-active set."""

    spikes: Tensor
    membrane: Tensor
    trace: Optional[Tensor]
    band: Tensor  # [T, ...] bool: |trace - threshold| < band width, where the surrogate is nonzero


class _Config(NamedTuple):
    convention: int
    reset: int
    detach_reset: bool
    surrogate: int
    surrogate_param: float
    grad_band: float  # the surrogate is zero where |membrane - threshold| >= grad_band; inf: no band
    decay_input: bool

    def names(self) -> dict:
        return dict(
            convention=CONVENTIONS[self.convention],
            reset=RESETS[self.reset],
            detach_reset=self.detach_reset,
            surrogate=SURROGATES[self.surrogate],
            surrogate_param=self.surrogate_param,
            grad_band=None if math.isinf(self.grad_band) else self.grad_band,
            decay_input=self.decay_input,
        )

    def band_width(self) -> Optional[float]:
        """Where the surrogate is nonzero: |membrane - threshold| < band_width (grad_band, and
        1/param for the triangle); None when it has no compact support."""
        widths = [] if math.isinf(self.grad_band) else [self.grad_band]
        if self.surrogate == SURROGATES.index("triangle"):
            widths.append(1.0 / self.surrogate_param)
        return min(widths) if widths else None


N_CONFIG = len(_Config._fields)


def _config_from_args(convention, reset, detach_reset, surrogate, surrogate_param, grad_band, decay_input) -> _Config:
    return _Config(
        int(convention),
        int(reset),
        bool(detach_reset),
        int(surrogate),
        float(surrogate_param),
        float(grad_band),
        bool(decay_input),
    )


@functools.lru_cache(maxsize=64, typed=True)  # typed: True must not hit the entry of 1
def _checked_config(convention, reset, detach_reset, surrogate, surrogate_param, grad_band, decay_input) -> _Config:
    """The kernels' config for the keyword options, validated once per distinct combination."""
    for name, value, options in (
        ("reset", reset, RESETS),
        ("surrogate", surrogate, SURROGATES),
        ("convention", convention, CONVENTIONS),
    ):
        if value not in options:
            raise ValueError(f"{name} must be one of {options}, got {value!r}")
    if surrogate_param is None:
        param = DEFAULT_SURROGATE_PARAM[surrogate]
    else:
        param = require_finite_number(surrogate_param, "surrogate_param", positive=True)
    band = math.inf if grad_band is None else require_finite_number(grad_band, "grad_band", positive=True)
    return _Config(
        CONVENTIONS.index(convention),
        RESETS.index(reset),
        detach_reset,
        SURROGATES.index(surrogate),
        param,
        band,
        decay_input,
    )


# --------------------------------------------------------------------------- C++ (CPU)


def _no_band(like: Tensor) -> Tensor:
    return like.new_empty(0, dtype=torch.bool)


def _cpp_forward(current, beta, threshold, v0, cfg: _Config, keep_trace: bool = True, keep_band: bool = False):
    """(spikes, trace, v_final, band); without keep_trace the trace is never written and an
    empty tensor stands in for it, and so for the band without keep_band."""
    spikes = empty_output(current)
    trace = empty_output(current) if keep_trace else current.new_empty(0)
    band = torch.empty(current.shape, dtype=torch.bool) if keep_band else _no_band(current)
    v_final = torch.empty_like(v0)
    cpp().lif_forward(
        _np(current),
        _np(beta),
        _np(threshold),
        _np(v0),
        *cfg,
        spikes.numpy(),
        trace.numpy() if keep_trace else None,
        v_final.numpy(),
        band.numpy() if keep_band else None,
        cfg.band_width() if keep_band else 0.0,
        torch.get_num_threads(),
    )
    return spikes, trace, v_final, band


def _cpp_backward(grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, cfg: _Config):
    """Gradients; with trace None the kernel recomputes it from current."""
    like = current if trace is None else trace
    grads = (empty_output(like), torch.empty_like(beta), torch.empty_like(threshold), torch.empty_like(v0))
    cpp().lif_backward(
        step_gradient_view(grad_spikes),
        step_gradient_view(grad_trace),
        None if grad_v_final is None else _np(grad_v_final),
        None if current is None else _np(current),
        None if trace is None else _np(trace),
        _np(beta),
        _np(threshold),
        _np(v0),
        *cfg,
        *(g.numpy() for g in grads),
        torch.get_num_threads(),
    )
    return grads


# --------------------------------------------------------------------------- dispatch per device


def _forward_impl(current, beta, threshold, v0, cfg: _Config, path: str, keep_trace=True, keep_band=False):
    if path == "triton":
        check_finite(current, "current")
        width = cfg.band_width() if keep_band else None
        spikes, trace, v_final, band = require_triton_kernels("lif").forward(current, beta, threshold, v0, cfg, width)
        return (
            spikes,
            (trace if keep_trace else trace.new_empty(0)),
            v_final,
            (_no_band(current) if band is None else band),
        )
    return _cpp_forward(current, beta, threshold, v0, cfg, keep_trace, keep_band)


def _backward_impl(grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, cfg, path):
    if grad_trace is not None and grad_trace.numel() == 0:  # the empty stand-in for an unwritten trace
        grad_trace = None
    if path == "triton":
        if trace is None:  # not kept (a forward that needed no gradient): recompute it
            _, trace, _, _ = require_triton_kernels("lif").forward(current, beta, threshold, v0, cfg)
        return require_triton_kernels("lif").backward(
            grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, cfg
        )
    return _cpp_backward(grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, cfg)


def _keeps_trace(path: str, needs_grad: bool, return_trace: bool) -> bool:
    """Whether the forward writes the trace: when asked for, or when the Triton backward reads
    it (the C++ backward recomputes it)."""
    return return_trace or (needs_grad and path == "triton")


def _saved(current: Tensor, trace: Tensor, cfg: _Config) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """(current or None, trace or None) for backward: the trace when the forward wrote one (an
    empty tensor stands in otherwise), the current when there is no trace to read or the
    SpikingJelly beta gradient with decay_input reads it."""
    has_trace = trace.numel() > 0
    reads_current = not has_trace or (cfg.convention == CONVENTIONS.index("spikingjelly") and cfg.decay_input)
    return (current if reads_current else None), (trace if has_trace else None)


def _forward(path, adaptive, current, beta, threshold, v0, *flags):
    """(spikes [T, M], trace [T, M] (empty [0] when not kept), final membrane [M], band [T, M]
    bool (empty [0] when not kept)) on one path; flags are the _Config fields, keep_trace and
    keep_band."""
    cfg, keep_trace, keep_band = _Config(*flags[:N_CONFIG]), flags[N_CONFIG], flags[N_CONFIG + 1]
    if path == "reference":
        check_finite(current, "current")
        spikes, v_final, trace = lif_reference(current, beta, threshold, v0, **cfg.names())
        band = (trace.detach() - threshold.detach()).abs() < cfg.band_width() if keep_band else _no_band(current)
        return spikes, trace, v_final, band
    return _forward_impl(current, beta, threshold, v0, cfg, path, keep_trace, keep_band)


def _save(ctx, route, inputs, outputs, eager):
    current, beta, threshold, v0, *flags = inputs
    ctx.cfg = _Config(*flags[:N_CONFIG])
    ctx.save_for_backward(*_saved(current, outputs[1], ctx.cfg), beta, threshold, v0)


def _backward(ctx, grads, compiled):
    """Gradients of (current, beta, threshold, v0, *flags), per element (the band carries none)."""
    grads = grads[:3]
    current, trace, beta, threshold, v0 = ctx.saved_tensors
    if compiled:
        grads = torch.ops.sparsespike.lif_backward(
            *grads, current, trace, beta, threshold, v0, *ctx.cfg, ctx.route.backend
        )
    else:
        grads = _backward_impl(*grads, current, trace, beta, threshold, v0, ctx.cfg, ctx.route.path)
    return (*grads, *[None] * (N_CONFIG + 2))  # nothing for the config fields, keep_trace, keep_band


# --------------------------------------------------------------------------- torch.library custom ops


@torch.library.custom_op("sparsespike::lif", mutates_args=())
def _lif_op(
    current: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v0: Tensor,
    convention: int,
    reset: int,
    detach_reset: bool,
    surrogate: int,
    surrogate_param: float,
    grad_band: float,
    decay_input: bool,
    keep_trace: bool,
    keep_band: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(spikes [T, M], trace [T, M] (or empty [0] without keep_trace), final membrane [M], band
    [T, M] bool (or empty [0] without keep_band)) of current [T, M]; per-neuron [M] params."""
    cfg = _config_from_args(convention, reset, detach_reset, surrogate, surrogate_param, grad_band, decay_input)
    path = LIF.kernel_route(backend, current).path
    return _forward_impl(current, beta, threshold, v0, cfg, path, keep_trace, keep_band)


@_lif_op.register_fake
def _lif_fake(
    current,
    beta,
    threshold,
    v0,
    convention,
    reset,
    detach_reset,
    surrogate,
    surrogate_param,
    grad_band,
    decay_input,
    keep_trace,
    keep_band,
    backend,
):
    trace = torch.empty_like(current) if keep_trace else current.new_empty(0)
    band = torch.empty_like(current, dtype=torch.bool) if keep_band else _no_band(current)
    return torch.empty_like(current), trace, torch.empty_like(v0), band


@torch.library.custom_op("sparsespike::lif_backward", mutates_args=())
def _lif_backward_op(
    grad_spikes: Optional[Tensor],
    grad_trace: Optional[Tensor],
    grad_v_final: Optional[Tensor],
    current: Optional[Tensor],
    trace: Optional[Tensor],
    beta: Tensor,
    threshold: Tensor,
    v0: Tensor,
    convention: int,
    reset: int,
    detach_reset: bool,
    surrogate: int,
    surrogate_param: float,
    grad_band: float,
    decay_input: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients (current, beta, threshold, v0), per element; without a trace the cpp kernel
    recomputes it from current."""
    cfg = _config_from_args(convention, reset, detach_reset, surrogate, surrogate_param, grad_band, decay_input)
    like = trace if trace is not None else current
    path = LIF.kernel_route(backend, like).path
    return _backward_impl(grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, cfg, path)


@_lif_backward_op.register_fake
def _lif_backward_fake(grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, *args):
    like = trace if trace is not None else current
    return torch.empty_like(like), torch.empty_like(beta), torch.empty_like(threshold), torch.empty_like(v0)


LIF = KernelOp("lif", forward=_forward, what="currents", save=_save, backward=_backward, custom_op=_lif_op)


# --------------------------------------------------------------------------- public entry point


@functools.lru_cache(maxsize=256)
def _constant_vector(value: float, size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A read-only [size] vector of one value, built once: the kernels read it, nothing writes it."""
    return torch.full((size,), value, dtype=dtype, device=device)


def _as_param(value, name: str, current: Tensor, unit_interval: bool = False, positive: bool = False) -> Tensor:
    """A float or tensor broadcast to the neuron shape current.shape[1:], flattened to [M]
    (clamped to [0, 1] with unit_interval)."""
    neuron_shape = current.shape[1:]
    eager = not torch.compiler.is_compiling()  # a traced graph builds its own tensors, no .item()
    if (
        eager
        and isinstance(value, Tensor)
        and value.numel() == 1
        and value.dim() <= len(neuron_shape)
        and value.dtype.is_floating_point
        and value.device.type == "cpu" == current.device.type
        and not (value.requires_grad and torch.is_grad_enabled())
    ):
        value = value.item()  # a scalar without gradient (a module's buffer): the cached vector below
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = require_finite_number(value, name, positive=positive)  # NaN would slip through the clamp below
        value = min(max(value, 0.0), 1.0) if unit_interval else value
        if eager:
            return _constant_vector(value, neuron_shape.numel(), current.dtype, current.device)
        value = torch.tensor(value, dtype=current.dtype, device=current.device)
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    require_tensor(value, name)
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float or a floating-point tensor, got dtype {value.dtype}")
    if value.device != current.device:
        raise ValueError(f"{name} is on {value.device} but current is on {current.device}")
    try:
        expanded = value.to(current.dtype).expand(neuron_shape)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast to the neuron shape {tuple(neuron_shape)}"
        ) from None
    flat = expanded.reshape(-1)
    return flat.clamp(0.0, 1.0) if unit_interval else flat


def _check_neuron_params(beta, threshold, v0, beta_vec: Tensor, threshold_vec: Tensor, v0_vec: Tensor) -> None:
    """NaN beta, a threshold that is not finite and > 0, a non-finite v0: ValueError. Python
    numbers were checked when read; tensors are read here (on CUDA only with
    SPARSESPIKE_CHECK_FINITE=1, as check_finite)."""
    if isinstance(beta, Tensor):
        check_finite(beta_vec, "beta")  # the clamp to [0, 1] keeps NaN and maps +-Inf into range
    if isinstance(threshold, Tensor):
        check_finite(threshold_vec, "threshold")
        if data_checked(threshold_vec) and not bool((threshold_vec > 0).all()):
            raise ValueError("threshold must be > 0 everywhere")
    if v0 is not None:
        check_finite(v0_vec, "v0")


def lif(
    current: Tensor,
    beta: Union[float, Tensor] = 0.9,
    threshold: Union[float, Tensor] = 1.0,
    v0: Optional[Tensor] = None,
    *,
    reset: str = "subtract",
    detach_reset: bool = True,
    surrogate: str = "fast_sigmoid",
    surrogate_param: Optional[float] = None,
    grad_band: Optional[float] = None,
    convention: str = "snntorch",
    decay_input: bool = True,
    return_trace: bool = False,
    return_band: bool = False,
    backend: Optional[str] = None,
) -> Union[LIFOutput, LIFBandOutput]:
    """Leaky integrate-and-fire neurons over all time steps of ``current`` ([T, ...], time-major).

    Args:
        beta: membrane decay, a float or a tensor broadcast over the neuron dims (learnable),
            clamped to [0, 1] (NaN raises). For SpikingJelly's tau, beta = 1 - 1/tau.
        threshold: finite and > 0, a float or a broadcastable tensor (learnable).
        v0: initial membrane [...], finite, on current's device (zeros by default); the
            gradient flows to it.
        reset: "subtract", "zero" or "none"; detach_reset=False lets the reset carry gradient.
        surrogate: "fast_sigmoid" (default slope 25, the study's), "atan" (2), "sigmoid" (25) or
            "triangle" (1); surrogate_param (finite, > 0) overrides the default, at no recompile.
        grad_band: truncates the surrogate to |membrane - threshold| < grad_band (finite, > 0;
            None: no band), so neuron-steps outside the band pass no gradient through their
            spikes (a surrogate with compact support, like "triangle" by itself).
        convention: "snntorch" (Leaky: reset from the previous step, fire on v > threshold) or
            "spikingjelly" (LIFNode: charge, fire on h >= threshold, reset within the step;
            decay_input scales the input by 1 - beta).
        return_trace: also return the membrane trace [T, ...].
        return_band: also return the band-active set [T, ...] (bool), where the surrogate is
            nonzero (|membrane - threshold| < its band width): a LIFBandOutput. Needs a surrogate
            with compact support (a grad_band, or "triangle"). The kernels write it in the
            forward, one byte per neuron-step; a layer consuming the spikes takes it as its
            grad_mask.
        backend: "auto", "reference", "cpp", "triton", or None for the process default.

    Returns:
        LIFOutput(spikes [T, ...], membrane [...], trace [T, ...] or None).

    Data checks (NaN/Inf current, beta, threshold or v0) read tensors, so on CUDA they run only
    with SPARSESPIKE_CHECK_FINITE=1.
    """
    require_time_major(current, "current")
    options = (convention, reset, bool(detach_reset), surrogate, surrogate_param, grad_band, bool(decay_input))
    if torch.compiler.is_compiling():  # dynamo traces through caches: validate plainly
        cfg = _checked_config.__wrapped__(*options)
    else:
        try:
            cfg = _checked_config(*options)
        except TypeError:  # an unhashable option: validate uncached, for the error naming it
            cfg = _checked_config.__wrapped__(*options)
    if isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        require_finite_number(threshold, "threshold", positive=True)
    if return_band and cfg.band_width() is None:
        raise ValueError(
            f"return_band needs a surrogate with compact support: a grad_band, or surrogate='triangle' "
            f"(got surrogate={surrogate!r} without grad_band)"
        )
    route = LIF.route(resolve_backend(backend, current.device), current)

    steps, neuron_shape = current.shape[0], current.shape[1:]
    flat = current.reshape(steps, -1)
    beta_vec = _as_param(beta, "beta", current, unit_interval=True)
    threshold_vec = _as_param(threshold, "threshold", current, positive=True)
    if v0 is None:
        v0_vec = torch.zeros(flat.shape[1], dtype=current.dtype, device=current.device)
    else:
        require_tensor(v0, "v0")
        if v0.shape != neuron_shape:
            raise ValueError(f"v0 must have the neuron shape {tuple(neuron_shape)}, got {tuple(v0.shape)}")
        require_same_device(v0, "v0", current, "current")
        v0_vec = v0.to(current.dtype).reshape(-1)
    if route.path != "cpp" and not torch.compiler.is_compiling():  # the C++ kernels check these before any work
        _check_neuron_params(beta, threshold, v0, beta_vec, threshold_vec, v0_vec)
    inputs = (flat, beta_vec, threshold_vec, v0_vec)
    keep_trace = _keeps_trace(route.path, needs_graph(inputs), return_trace)
    spikes, trace, v_final, band = LIF(route, *inputs, *cfg, keep_trace, bool(return_band))
    out = LIFOutput(
        spikes.reshape(current.shape),
        v_final.reshape(neuron_shape),
        trace.reshape(current.shape) if return_trace else None,
    )
    return LIFBandOutput(*out, band.reshape(current.shape)) if return_band else out
