"""Triton kernels of spike_linear: compaction, and one gather-accumulate kernel for both directions.

Forward: each row of spikes is compacted into (index, value) lists (ELL layout, one program per
row, order kept by a cumsum), then each (row, column block) program sums the weight rows of its
active inputs, read from the input-major weight W^T so that a gathered row is contiguous.
Weight gradient: the same two kernels on spikes^T and grad_out, so each (input, column block)
program owns its output tile and loops over the rows where that input fired: no atomics, a fixed
order, deterministic. Masked input gradient: the mask's rows compacted the same way, then each
(row, block of listed inputs) program dots the row's grad with the weight columns of its inputs
and writes them (a row's inputs are distinct: no atomics); the rest stays zero. All accumulation is fp32 (fp64 for fp64 weights). Written for triton 3.6+
(pointer arithmetic and masks only, no block pointers) and runnable under TRITON_INTERPRET=1.

Fusion: the gather is compared with the reference (F.linear) at a tolerance, not bit for bit, and
launches with _launch.TOLERANT (enable_fp_fusion=True): on a GPU its multiply-adds (value x weight
row + accumulator) may be contracted into fused multiply-adds. The compaction does no float
arithmetic (it copies values) and launches with _launch.EXACT.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import EXACT, TOLERANT, cdiv


@triton.jit
def _compact_rows_kernel(
    s_ptr,
    idx_ptr,
    val_ptr,
    cnt_ptr,
    n_cols,
    stride_row,
    BLOCK: tl.constexpr,
):
    """ELL compaction of one row: idx/val[row, :cnt] = positions/values of its nonzeros, in order."""
    row = tl.program_id(0).to(tl.int64)
    base = tl.program_id(0) * 0  # int32 running count, carried across the column blocks
    for c0 in range(0, n_cols, BLOCK):
        cols = c0 + tl.arange(0, BLOCK)
        in_row = cols < n_cols
        v = tl.load(s_ptr + row * stride_row + cols, mask=in_row, other=0)
        active = (v != 0) & in_row
        slot = base + tl.cumsum(active.to(tl.int32), axis=0) - 1
        tl.store(idx_ptr + row * n_cols + slot, cols, mask=active)
        tl.store(val_ptr + row * n_cols + slot, v.to(val_ptr.dtype.element_ty), mask=active)
        base += tl.sum(active.to(tl.int32), axis=0)
    tl.store(cnt_ptr + row, base)


@triton.jit
def _gather_rows_kernel(
    idx_ptr,
    val_ptr,
    cnt_ptr,
    b_ptr,
    bias_ptr,
    out_ptr,
    ell_width,
    n_cols,
    stride_b,
    stride_out,
    HAS_BIAS: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """out[row, cols] = bias[cols] + sum_j val[row, j] * B[idx[row, j], cols] over j < cnt[row]."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    in_cols = cols < n_cols
    count = tl.load(cnt_ptr + row)
    acc = tl.zeros([BLOCK_N], dtype=val_ptr.dtype.element_ty)
    for j0 in range(0, count, BLOCK_K):
        js = j0 + tl.arange(0, BLOCK_K)
        in_list = js < count
        src = tl.load(idx_ptr + row * ell_width + js, mask=in_list, other=0).to(tl.int64)
        v = tl.load(val_ptr + row * ell_width + js, mask=in_list, other=0)
        tile_mask = in_list[:, None] & in_cols[None, :]
        b = tl.load(b_ptr + src[:, None] * stride_b + cols[None, :], mask=tile_mask, other=0)
        acc += tl.sum(v[:, None] * b.to(acc.dtype), axis=0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=in_cols, other=0).to(acc.dtype)
    tl.store(out_ptr + row * stride_out + cols, acc.to(out_ptr.dtype.element_ty), mask=in_cols)


@triton.jit
def _masked_dot_kernel(
    idx_ptr,
    cnt_ptr,
    g_ptr,
    w_ptr,
    out_ptr,
    ell_width,
    n_out,
    stride_g,
    stride_w,
    stride_out,
    ACC_FP64: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_O: tl.constexpr,
):
    """out[row, i] = grad[row, :] . W[:, i] for the inputs i listed in row's block of the mask's
    ELL lists (W [n_out, in] row-major); a block past the row's count does nothing."""
    row = tl.program_id(0).to(tl.int64)
    first = tl.program_id(1) * BLOCK_K
    count = tl.load(cnt_ptr + row)
    if first < count:
        js = first + tl.arange(0, BLOCK_K)
        listed = js < count
        cols = tl.load(idx_ptr + row * ell_width + js, mask=listed, other=0).to(tl.int64)
        acc = tl.zeros([BLOCK_K], dtype=tl.float64 if ACC_FP64 else tl.float32)
        for o0 in range(0, n_out, BLOCK_O):
            outs = o0 + tl.arange(0, BLOCK_O)
            in_out = outs < n_out
            g = tl.load(g_ptr + row * stride_g + outs, mask=in_out, other=0).to(acc.dtype)
            w = tl.load(
                w_ptr + outs[None, :].to(tl.int64) * stride_w + cols[:, None],
                mask=listed[:, None] & in_out[None, :],
                other=0,
            )
            acc += tl.sum(w.to(acc.dtype) * g[None, :], axis=1)
        tl.store(out_ptr + row * stride_out + cols, acc.to(out_ptr.dtype.element_ty), mask=listed)


def _accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _as_loadable(spikes: torch.Tensor) -> torch.Tensor:
    # bool pointers are int1 in Triton; the same bytes as uint8 load as plain integers
    spikes = spikes.contiguous()
    return spikes.view(torch.uint8) if spikes.dtype == torch.bool else spikes


def compact_block(cols: int) -> int:
    """The column block of the compaction of rows of `cols` entries."""
    return min(triton.next_power_of_2(max(cols, 16)), 1024)


def compact_grid(rows: int) -> tuple:
    """One compaction program per row."""
    return (rows,)


def gather_block_n(n_cols: int) -> int:
    """The output-column block of the gather."""
    return min(triton.next_power_of_2(max(n_cols, 16)), 128)


def gather_grid(rows: int, n_cols: int) -> tuple:
    """One gather program per (row, block of output columns)."""
    return (rows, cdiv(n_cols, gather_block_n(n_cols)))


MASKED_BLOCK_K, MASKED_BLOCK_O = 32, 64


def masked_dot_grid(rows: int, in_features: int) -> tuple:
    """One masked-gradient program per (row, block of MASKED_BLOCK_K listed inputs)."""
    return (rows, cdiv(in_features, MASKED_BLOCK_K))


def launch_grids(rows: int, in_features: int, out_features: int) -> dict[str, tuple]:
    """The grid of every launch of forward() (spikes [rows, in_features] -> [rows, out_features]),
    of grad_weight_t() (compaction of spikes^T, then the gather of grad_out rows) and of
    grad_input_masked() (compaction of the mask, then the dot products)."""
    return {
        "forward/_compact_rows_kernel": compact_grid(rows),
        "forward/_gather_rows_kernel": gather_grid(rows, out_features),
        "grad_weight_t/_compact_rows_kernel": compact_grid(in_features),
        "grad_weight_t/_gather_rows_kernel": gather_grid(in_features, out_features),
        "grad_input_masked/_compact_rows_kernel": compact_grid(rows),
        "grad_input_masked/_masked_dot_kernel": masked_dot_grid(rows, in_features),
    }


def compact_rows(spikes: torch.Tensor, acc_dtype: torch.dtype):
    """ELL lists of a 2-D spike tensor: (idx [R, C] int32, val [R, C], cnt [R] int32)."""
    spikes = _as_loadable(spikes)
    rows, cols = spikes.shape
    idx = torch.empty((rows, cols), dtype=torch.int32, device=spikes.device)
    val = torch.empty((rows, cols), dtype=acc_dtype, device=spikes.device)
    cnt = torch.empty((rows,), dtype=torch.int32, device=spikes.device)
    _compact_rows_kernel[compact_grid(rows)](
        spikes, idx, val, cnt, cols, spikes.stride(0), BLOCK=compact_block(cols), **EXACT
    )
    return idx, val, cnt


def _gather_rows(idx, val, cnt, b: torch.Tensor, bias, out: torch.Tensor) -> None:
    rows, width = idx.shape
    n_cols = b.shape[1]
    _gather_rows_kernel[gather_grid(rows, n_cols)](
        idx,
        val,
        cnt,
        b,
        bias if bias is not None else b,
        out,
        width,
        n_cols,
        b.stride(0),
        out.stride(0),
        HAS_BIAS=bias is not None,
        BLOCK_K=32,
        BLOCK_N=gather_block_n(n_cols),
        **TOLERANT,
    )


def forward(spikes: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None):
    """(spikes [R, in] @ weight_t [in, out] + bias, nnz as an int64 device scalar)."""
    idx, val, cnt = compact_rows(spikes, _accumulator_dtype(weight_t.dtype))
    out = torch.empty((spikes.shape[0], weight_t.shape[1]), dtype=weight_t.dtype, device=weight_t.device)
    _gather_rows(idx, val, cnt, weight_t.contiguous(), bias.contiguous() if bias is not None else None, out)
    return out, cnt.sum(dtype=torch.int64)


def grad_weight_t(grad_out: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """spikes^T @ grad_out, [in, out], over the rows where each input fired."""
    idx, val, cnt = compact_rows(spikes.t().contiguous(), _accumulator_dtype(grad_out.dtype))
    out = torch.empty((spikes.shape[1], grad_out.shape[1]), dtype=grad_out.dtype, device=grad_out.device)
    _gather_rows(idx, val, cnt, grad_out.contiguous(), None, out)
    return out


def grad_input_masked(grad_out: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """grad_out [R, out] @ weight [out, in] at mask's nonzeros [R, in], zero elsewhere."""
    acc = _accumulator_dtype(grad_out.dtype)
    idx, _, cnt = compact_rows(mask, acc)
    grad_out, weight = grad_out.contiguous(), weight.contiguous()
    rows, in_features = mask.shape
    out = torch.zeros((rows, in_features), dtype=grad_out.dtype, device=grad_out.device)
    _masked_dot_kernel[masked_dot_grid(rows, in_features)](
        idx,
        cnt,
        grad_out,
        weight,
        out,
        idx.shape[1],
        weight.shape[0],
        grad_out.stride(0),
        weight.stride(0),
        out.stride(0),
        ACC_FP64=acc == torch.float64,
        BLOCK_K=MASKED_BLOCK_K,
        BLOCK_O=MASKED_BLOCK_O,
        **TOLERANT,
    )
    return out
