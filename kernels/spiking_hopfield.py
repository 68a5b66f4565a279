"""Triton kernels of the spiking Hopfield recall (sparsespike/ops/spiking_hopfield.py).

Two kernels:
- column sums: total[i] = sum_j weight[j, i], one program per block of columns, j increasing.
- recall: one program per batch row, the time loop inside. Every neuron of a row needs the whole
  previous spike row, and programs cannot wait for each other, so a row's neurons stay in one
  program: per step it compacts the previous spike row into an increasing index list (a
  cumsum per block, in global scratch), then for each block of neurons sums the weight rows
  of the active neurons, one after another in index order, and applies the LIF update
  (lif_step.py's, snnTorch convention, reset from the previous spike). Barriers order the
  scratch and spike writes of one step before the reads of the next.

Sums run in the reference's order (from 0, j increasing, one add per active row) and both
kernels launch without floating-point contraction (_launch.EXACT, enable_fp_fusion=False), so
spikes and membranes equal the reference's and the C++ kernel's bit for bit. The event loop is
unrolled by four (masked loads of absent events add exact zeros) so the row loads overlap on a
GPU. Pointer + mask code only, for triton 3.6+ and TRITON_INTERPRET=1 (where the barriers
are no-ops: programs run one at a time).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import EXACT, cdiv
from .lif_step import snntorch_spike, snntorch_step

SUBTRACT, ZERO, NONE = 0, 1, 2
_MAX_BLOCK = 1024


@triton.jit
def _column_sums_kernel(w_ptr, total_ptr, n, BLOCK: tl.constexpr):
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = cols < n
    acc = tl.zeros([BLOCK], dtype=total_ptr.dtype.element_ty)
    row = w_ptr + cols
    for _ in range(0, n):
        acc += tl.load(row, mask=m, other=0)
        row += n
    tl.store(total_ptr + cols, acc, mask=m)


@triton.jit
def _add_event(acc, w_ptr, idx_row, k, count, n, cols, m):
    """acc + weight[idx[k], cols] when k < count, else acc + 0 (exact)."""
    present = k < count
    j = tl.load(idx_row + k, mask=present, other=0).to(tl.int64)  # row 0 stands in when absent
    w = tl.load(w_ptr + j * n + cols, mask=m, other=0)
    return acc + tl.where(present, w, 0.0).to(acc.dtype)


@triton.jit
def _recall_kernel(
    w_ptr,
    total_ptr,
    params_ptr,
    s_ptr,
    v_ptr,
    idx_ptr,
    n,
    step_stride,
    steps,
    RESET: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """s_ptr: [steps + 1, batch, n], row 0 the cue; v_ptr [batch, n] and idx_ptr [batch, n]
    scratch (v ends as the final membrane)."""
    row = tl.program_id(0).to(tl.int64)
    beta = tl.load(params_ptr)
    th = tl.load(params_ptr + 1)
    lanes = tl.arange(0, BLOCK)
    idx_row = idx_ptr + row * n
    v_row = v_ptr + row * n
    for c0 in range(0, n, BLOCK):
        cols = c0 + lanes
        tl.store(v_row + cols, tl.zeros([BLOCK], dtype=v_ptr.dtype.element_ty), mask=cols < n)
    prev = s_ptr + row * n
    for _ in range(0, steps):
        out = prev + step_stride
        # the previous spike row as an increasing list of active neurons
        count = tl.program_id(0) * 0
        for c0 in range(0, n, BLOCK):
            cols = c0 + lanes
            m = cols < n
            active = (tl.load(prev + cols, mask=m, other=0) != 0) & m
            slot = count + tl.cumsum(active.to(tl.int32), axis=0) - 1
            tl.store(idx_row + slot, cols, mask=active)
            count += tl.sum(active.to(tl.int32), axis=0)
        tl.debug_barrier()
        for c0 in range(0, n, BLOCK):
            cols = c0 + lanes
            m = cols < n
            acc = tl.zeros([BLOCK], dtype=v_ptr.dtype.element_ty)
            for k in range(0, count, 4):
                acc = _add_event(acc, w_ptr, idx_row, k, count, n, cols, m)
                acc = _add_event(acc, w_ptr, idx_row, k + 1, count, n, cols, m)
                acc = _add_event(acc, w_ptr, idx_row, k + 2, count, n, cols, m)
                acc = _add_event(acc, w_ptr, idx_row, k + 3, count, n, cols, m)
            current = 2.0 * acc - tl.load(total_ptr + cols, mask=m, other=0)
            v = snntorch_step(tl.load(v_row + cols, mask=m, other=0), current, beta, th, RESET)
            s = snntorch_spike(v, th)
            tl.store(v_row + cols, v, mask=m)
            tl.store(out + cols, s, mask=m)
        tl.debug_barrier()
        prev = out


def block(n: int) -> int:
    """The neuron block of both kernels for n neurons."""
    return min(triton.next_power_of_2(max(n, 16)), _MAX_BLOCK)


def column_sums_grid(n: int) -> tuple:
    """One program per block of columns of the [n, n] weight."""
    return (cdiv(n, block(n)),)


def recall_grid(batch: int) -> tuple:
    """One program per batch row (a row's neurons need each other's spikes every step)."""
    return (batch,)


def launch_grids(batch: int, n: int) -> dict[str, tuple]:
    """The grid of every launch of recall() for a cue [batch, n]."""
    return {"_column_sums_kernel": column_sums_grid(n), "_recall_kernel": recall_grid(batch)}


def recall(weight: torch.Tensor, cue: torch.Tensor, steps: int, beta: float, threshold: float, reset: int):
    """(spikes [steps, batch, n], final membrane [batch, n]) in the weight's dtype; the cue
    [batch, n] holds 0/1 in the weight's dtype."""
    weight = weight.contiguous()
    n, batch = weight.shape[0], cue.shape[0]
    dtype, device = weight.dtype, weight.device
    block_n = block(n)
    total = torch.empty(n, dtype=dtype, device=device)
    _column_sums_kernel[column_sums_grid(n)](weight, total, n, BLOCK=block_n, **EXACT)
    buffer = torch.empty((steps + 1, batch, n), dtype=dtype, device=device)
    buffer[0] = cue
    v = torch.empty((batch, n), dtype=dtype, device=device)
    idx = torch.empty((batch, n), dtype=torch.int32, device=device)
    params = torch.tensor([beta, threshold], dtype=dtype, device=device)
    _recall_kernel[recall_grid(batch)](
        weight,
        total,
        params,
        buffer,
        v,
        idx,
        n,
        batch * n,
        steps,
        RESET=reset,
        BLOCK=block_n,
        **EXACT,
    )
    return buffer[1:], v
