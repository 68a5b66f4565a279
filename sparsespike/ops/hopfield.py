"""hopfield_retrieve: modern Hopfield retrieval (Ramsauer et al. 2020), xi <- softmax(beta xi P^T) V.

Three implementations behind :func:`hopfield_retrieve`:

- reference: plain torch (matmul, softmax, matmul), the oracle.
- cpp (CPU): the scores q P^T of the first step go through spike_linear's event-driven C++
  kernels (with backend "auto", only when the query is sparse enough to pay, by spike_linear's
  measured crossover), so a spike query costs nnz x K additions instead of Q x d x K
  multiply-adds, and so does the patterns' gradient through the scores (spikes^T dS over active
  inputs only). The dense products (A V and the backward's dA = dO V^T, dV, dq) run in torch's
  BLAS, which a hand-written kernel would not beat on CPU; later steps have real-valued queries
  and run dense.
- triton (CUDA; CPU under TRITON_INTERPRET=1): one fused kernel per step (scores, softmax and
  A V without writing S), backward in two kernels (``kernels/hopfield.py``), up to 1024 patterns.

SynOps: the first step's query nonzeros x K (a spike delivered to each stored pattern); later
steps' queries are real-valued (multiply-accumulates, not synaptic events) and are not counted.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from .. import synops
from .._backend import require_triton_kernels, resolve_backend, triton_kernels
from ._validate import (
    SPIKE_INT_DTYPES,
    check_finite,
    refuse_double_backward,
    require_nonempty,
    require_same_device,
    require_tensor,
    spikes_named,
)
from .spike_linear import _SpikeLinearFunction

__all__ = ["hopfield_retrieve", "hopfield_retrieve_reference"]

_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def hopfield_retrieve_reference(
    query: Tensor, patterns: Tensor, beta: float, values: Optional[Tensor] = None, steps: int = 1
) -> Tensor:
    """The oracle: ``steps`` times xi <- softmax(beta * xi @ patterns^T) @ values."""
    values = patterns if values is None else values
    xi = query.to(patterns.dtype)
    for _ in range(steps):
        xi = torch.softmax(beta * (xi @ patterns.t()), dim=-1) @ values
    return xi


# --------------------------------------------------------------------------- triton (fused)


@torch.library.custom_op("sparsespike::hopfield_step", mutates_args=())
def _hopfield_step(query: Tensor, patterns: Tensor, values: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """(softmax(scale q P^T) V [Q, dv], row log-sum-exp [Q] fp32), the fused Triton kernel."""
    return require_triton_kernels("hopfield").forward(
        query.contiguous(), patterns.contiguous(), values.contiguous(), scale
    )


@_hopfield_step.register_fake
def _hopfield_step_fake(query, patterns, values, scale):
    return query.new_empty((query.shape[0], values.shape[1])), query.new_empty(query.shape[0], dtype=torch.float32)


@torch.library.custom_op("sparsespike::hopfield_step_backward", mutates_args=())
def _hopfield_step_backward(
    grad_out: Tensor, query: Tensor, patterns: Tensor, values: Tensor, lse: Tensor, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(d query, d patterns through the scores, d values)."""
    return require_triton_kernels("hopfield").backward(
        grad_out.contiguous(), query.contiguous(), patterns.contiguous(), values.contiguous(), lse, scale
    )


@_hopfield_step_backward.register_fake
def _hopfield_step_backward_fake(grad_out, query, patterns, values, lse, scale):
    return torch.empty_like(query), torch.empty_like(patterns), torch.empty_like(values)


def _setup_context(ctx, inputs, output):
    query, patterns, values, scale = inputs
    ctx.scale = scale
    ctx.save_for_backward(query, patterns, values, output[1])


def _backward(ctx, grad_out, _grad_lse):
    refuse_double_backward("hopfield_retrieve", "triton")
    query, patterns, values, lse = ctx.saved_tensors
    dq, dp, dv = torch.ops.sparsespike.hopfield_step_backward(grad_out, query, patterns, values, lse, ctx.scale)
    return dq, dp, dv, None


_hopfield_step.register_autograd(_backward, setup_context=_setup_context)


def _triton_step(xi: Tensor, patterns: Tensor, values: Tensor, beta: float) -> Tensor:
    out, _ = torch.ops.sparsespike.hopfield_step(xi, patterns, values, beta)
    return out


# --------------------------------------------------------------------------- CPU: event-driven scores


def _scores_event_driven(xi: Tensor, patterns: Tensor, backend: str) -> tuple[Tensor, Tensor]:
    """(xi P^T [Q, K], nonzeros of xi) through spike_linear's kernels (no SynOps recorded there)."""
    if torch.compiler.is_compiling():
        return torch.ops.sparsespike.spike_linear(xi, patterns, None, backend)
    with spikes_named("query"):
        return _SpikeLinearFunction.apply(xi, patterns, None, backend, "hopfield_retrieve")


# --------------------------------------------------------------------------- public entry point


def _select_path(backend: str, patterns: Tensor, values: Tensor) -> str:
    if backend == "reference":
        return backend
    if backend == "triton":
        if patterns.dtype not in _TRITON_DTYPES:
            raise TypeError(f"backend='triton' supports float32, float16 and bfloat16 patterns, got {patterns.dtype}")
        if values.shape[0] > triton_max_patterns():
            raise ValueError(
                f"backend='triton' keeps all patterns in one block: at most {triton_max_patterns()}, got {values.shape[0]}"
            )
        return backend
    if backend == "cpp":
        if patterns.device.type != "cpu":
            raise ValueError(f"backend='cpp' runs on CPU tensors only, got {patterns.device}")
        return "cpp"
    # auto
    if patterns.device.type == "cuda":
        fits = values.shape[0] <= triton_max_patterns() and patterns.dtype in _TRITON_DTYPES
        return "triton" if fits and triton_kernels("hopfield") is not None else "reference"
    return "auto" if patterns.device.type == "cpu" else "reference"


def triton_max_patterns() -> int:
    """The most stored patterns the Triton kernels take (0 without Triton)."""
    kernels = triton_kernels("hopfield")
    return kernels.MAX_PATTERNS if kernels is not None else 0


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


def hopfield_retrieve(
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
    path = _select_path(backend, patterns, vals)
    n_patterns = patterns.shape[0]
    xi = query.reshape(-1, patterns.shape[1])
    nnz = None
    for step in range(steps):
        if path in ("cpp", "auto") and step == 0:
            scores, nnz = _scores_event_driven(xi, patterns, path)
            xi = torch.softmax(beta * scores, dim=-1) @ vals
            continue
        if step == 0:
            if not torch.compiler.is_compiling():
                check_finite(xi, "query")
            nnz = torch.count_nonzero(xi)
        xi = xi.to(patterns.dtype)
        if path == "triton":
            xi = _triton_step(xi, patterns, vals, beta)
        else:
            xi = torch.softmax(beta * (xi @ patterns.t()), dim=-1) @ vals
    synops.record("hopfield_retrieve", nnz, n_patterns)
    return xi.reshape(*query.shape[:-1], vals.shape[1])
