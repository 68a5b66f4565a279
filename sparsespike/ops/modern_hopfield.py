"""modern_hopfield: modern Hopfield retrieval (Ramsauer et al. 2020), xi <- softmax(beta xi P^T) V.

Three implementations behind :func:`modern_hopfield`:

- reference: plain torch (matmul, softmax, matmul), the oracle.
- cpp (CPU): the scores q P^T of the first step go through spike_linear's event-driven C++
  kernels (with backend "auto", only when the query is sparse enough to pay, by spike_linear's
  measured crossover), so a spike query costs nnz x K additions instead of Q x d x K
  multiply-adds, and so does the patterns' gradient through the scores (spikes^T dS over active
  inputs only). The dense products (A V and the backward's dA = dO V^T, dV, dq) run in torch's
  BLAS, which a hand-written kernel would not beat on CPU; later steps have real-valued queries
  and run dense.
- triton (CUDA; CPU under TRITON_INTERPRET=1): one fused kernel per step (scores, an online
  softmax over blocks of patterns and A V, without writing S; any number of patterns), backward in
  a scores kernel and three products (``kernels/modern_hopfield.py``).

SynOps: the first step's query nonzeros x K (a spike delivered to each stored pattern); later
steps' queries are real-valued (multiply-accumulates, not synaptic events) and are not counted.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from .._backend import require_triton_kernels, resolve_backend
from ..synops import record as record_synops
from ._framework import KernelOp, Route
from ._validate import (
    SPIKE_INT_DTYPES,
    check_finite,
    require_nonempty,
    require_same_device,
    require_tensor,
    spikes_named,
)
from .spike_linear import SPIKE_LINEAR

__all__ = ["MODERN_HOPFIELD_STEP", "modern_hopfield", "modern_hopfield_reference"]

_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def modern_hopfield_reference(
    query: Tensor, patterns: Tensor, beta: float, values: Optional[Tensor] = None, steps: int = 1
) -> Tensor:
    """The oracle: ``steps`` times xi <- softmax(beta * xi @ patterns^T) @ values."""
    values = patterns if values is None else values
    xi = query.to(patterns.dtype)
    for _ in range(steps):
        xi = torch.softmax(beta * (xi @ patterns.t()), dim=-1) @ values
    return xi


# --------------------------------------------------------------------------- one update step per path


def _step_forward(path, adaptive, query, patterns, values, scale):
    """(softmax(scale q P^T) V [Q, dv], row log-sum-exp [Q] fp32 from the Triton kernel, which
    its backward reads; the torch step returns an empty stand-in)."""
    if path == "triton":  # one fused kernel: scores, softmax and A V without writing the scores
        return require_triton_kernels("modern_hopfield").forward(
            query.contiguous(), patterns.contiguous(), values.contiguous(), scale
        )
    out = torch.softmax(scale * (query @ patterns.t()), dim=-1) @ values
    return out, out.new_empty(0)


def _save(ctx, route, inputs, outputs, eager):
    query, patterns, values, scale = inputs
    ctx.scale = scale
    ctx.save_for_backward(query, patterns, values, *outputs)


def _backward(ctx, grads, compiled):
    """Gradients of (query, patterns, values, scale): d query, d patterns through the scores,
    d values, in the Triton backward (a scores kernel, then three products)."""
    query, patterns, values, out, lse = ctx.saved_tensors
    if compiled:
        step_backward = torch.ops.sparsespike.modern_hopfield_step_backward
    else:
        step_backward = require_triton_kernels("modern_hopfield").backward
    dq, dp, dv = step_backward(
        grads[0].contiguous(), query.contiguous(), patterns.contiguous(), values.contiguous(), out, lse, ctx.scale
    )
    return dq, dp, dv, None


@torch.library.custom_op("sparsespike::modern_hopfield_step", mutates_args=())
def _step_op(query: Tensor, patterns: Tensor, values: Tensor, scale: float, backend: str) -> tuple[Tensor, Tensor]:
    """One update step and its row log-sum-exp (the fused Triton kernel on its path)."""
    route = MODERN_HOPFIELD_STEP.route(backend, patterns)
    return _step_forward(route.path, route.adaptive, query, patterns, values, scale)


@_step_op.register_fake
def _step_fake(query, patterns, values, scale, backend):
    lse_rows = query.shape[0] if MODERN_HOPFIELD_STEP.route(backend, patterns).path == "triton" else 0
    return query.new_empty((query.shape[0], values.shape[1])), query.new_empty(lse_rows, dtype=torch.float32)


@torch.library.custom_op("sparsespike::modern_hopfield_step_backward", mutates_args=())
def _step_backward_op(
    grad_out: Tensor, query: Tensor, patterns: Tensor, values: Tensor, out: Tensor, lse: Tensor, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(d query, d patterns through the scores, d values) of the Triton step whose forward gave (out, lse)."""
    return require_triton_kernels("modern_hopfield").backward(grad_out, query, patterns, values, out, lse, scale)


@_step_backward_op.register_fake
def _step_backward_fake(grad_out, query, patterns, values, out, lse, scale):
    return torch.empty_like(query), torch.empty_like(patterns), torch.empty_like(values)


MODERN_HOPFIELD_STEP = KernelOp(
    "modern_hopfield",
    forward=_step_forward,
    what="patterns",
    cpp_dtypes=(torch.float32, torch.float64),  # the scores run on spike_linear's C++ kernels
    triton_dtypes=_TRITON_DTYPES,
    triton_module="modern_hopfield",
    save=_save,
    backward=_backward,
    non_differentiable=(1,),
    materialize_grads=True,
    custom_op=_step_op,
)


# --------------------------------------------------------------------------- public entry point


def _validate(query, patterns, values, beta, steps) -> None:
    require_tensor(query, "query")
    require_tensor(patterns, "patterns")
    if patterns.dim() != 2:
        raise ValueError(f"patterns must be 2-D [K, d], got shape {tuple(patterns.shape)}")
    if not patterns.dtype.is_floating_point:
        raise TypeError(f"patterns must be a floating-point tensor, got dtype {patterns.dtype}")
    require_nonempty(patterns, "patterns")
    if query.dim() < 1 or query.shape[-1] != patterns.shape[1]:
        raise ValueError(
            f"query must be [..., d] with d = {patterns.shape[1]} (the patterns' width), got shape {tuple(query.shape)}"
        )
    require_nonempty(query, "query")
    if query.dtype not in SPIKE_INT_DTYPES and query.dtype != patterns.dtype:
        raise TypeError(f"query must be bool, uint8 or the patterns' dtype ({patterns.dtype}), got {query.dtype}")
    require_same_device(query, "query", patterns, "patterns")
    if values is not None:
        require_tensor(values, "values")
        if values.dim() != 2 or values.shape[0] != patterns.shape[0]:
            raise ValueError(
                f"values must be 2-D [K, dv] with K = {patterns.shape[0]} (one row per pattern), got shape {tuple(values.shape)}"
            )
        if values.dtype != patterns.dtype:
            raise TypeError(f"values must have the patterns' dtype ({patterns.dtype}), got {values.dtype}")
        require_nonempty(values, "values")
        require_same_device(values, "values", patterns, "patterns")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    dim_v = patterns.shape[1] if values is None else values.shape[1]
    if steps > 1 and dim_v != patterns.shape[1]:
        raise ValueError(
            f"steps > 1 feeds the output back as the query: values must have width d = {patterns.shape[1]}, got {dim_v}"
        )
    if beta is not None and (
        isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0
    ):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")


def modern_hopfield(
    query: Tensor,
    patterns: Tensor,
    beta: Optional[float] = None,
    values: Optional[Tensor] = None,
    steps: int = 1,
    *,
    backend: Optional[str] = None,
) -> Tensor:
    """Modern Hopfield retrieval: ``steps`` times xi <- softmax(beta * xi @ patterns^T) @ values.

    Args:
        query: [..., d]; float (the patterns' dtype) or a bool/uint8 spike tensor. Binary or sparse
            queries make the scores event-driven on CPU.
        patterns: [K, d] stored patterns (learnable).
        beta: inverse temperature, a float > 0; 1/sqrt(d) by default.
        values: [K, dv] (learnable), the patterns themselves by default.
        steps: update steps; > 1 needs dv == d (the output becomes the next query).
        backend: "auto", "reference", "cpp", "triton", or None for the process default.

    Returns:
        [..., dv] in the patterns' dtype.
    """
    _validate(query, patterns, values, beta, steps)
    beta = 1.0 / math.sqrt(patterns.shape[1]) if beta is None else float(beta)
    backend = resolve_backend(backend, patterns.device)
    if not torch.compiler.is_compiling():  # a data-dependent check; compiled graphs skip it
        check_finite(patterns, "patterns")
        if values is not None:
            check_finite(values, "values")
    vals = patterns if values is None else values
    route = MODERN_HOPFIELD_STEP.route(backend, patterns)
    xi = query.reshape(-1, patterns.shape[1])
    first = 0
    if route.path == "cpp":  # the first step's scores event-driven, on spike_linear's kernels
        with spikes_named("query"):
            scores, nnz = SPIKE_LINEAR(
                SPIKE_LINEAR.route(backend, patterns, caller=route.caller), xi, patterns, None, None
            )
        xi = torch.softmax(beta * scores, dim=-1) @ vals
        route, first = Route("reference", False, backend, route.caller), 1  # later queries are real-valued
    else:
        if not torch.compiler.is_compiling():
            check_finite(xi, "query")
        nnz = torch.count_nonzero(xi)
    for _ in range(first, steps):
        xi, _ = MODERN_HOPFIELD_STEP(route, xi.to(patterns.dtype), patterns, vals, beta)
    record_synops("modern_hopfield", nnz, patterns.shape[0])
    return xi.reshape(*query.shape[:-1], vals.shape[1])
