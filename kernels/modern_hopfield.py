"""Triton kernels of one modern-Hopfield retrieval step: out = softmax(scale * q P^T) V.

The stored patterns stream through in blocks of BLOCK_K, so any number of them fits (no block
holds all K scores; registers and shared memory depend only on the block sizes):

- Forward, one program per (block of queries, block of value columns): for each block of
  patterns, S = scale * q P^T (tl.dot over feature chunks), an online softmax (running row max
  and sum, the accumulator rescaled when the max grows) and acc += exp(S - max) V; the row
  log-sum-exp is written once, by the programs of the first value block, for the backward.
- Backward, one program per (block of queries, block of patterns): A = exp(S - lse) from the
  recomputed scores, dA = dO V^T, delta = rowsum(dO * out) (equal to rowsum(A * dA), without a
  pass over all patterns), dS = scale * A * (dA - delta); A and dS are written. Then dq = dS P,
  dP = dS^T q and dV = A^T dO come from one product kernel whose programs own their output tiles
  and loop over the shared dimension in order: no atomics, deterministic.

Accumulation in fp32 with IEEE products (no TF32), so results agree with the fp32 reference at
fp32 tolerances. Every grid is one-dimensional (a program splits its id into its two block
indices), so no grid axis meets CUDA's 65535 limit of axes 1 and 2; row offsets are 64-bit.

Fusion: compared with the reference at a tolerance, not bit for bit (tl.dot sums in its own order,
the online softmax rescales, exp and log are Triton's), so every kernel launches with
_launch.TOLERANT (enable_fp_fusion=True): on a GPU multiply-adds outside tl.dot may be contracted
into fused multiply-adds.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import TOLERANT, cdiv


@triton.jit
def _score_tile(
    q_ptr,
    p_ptr,
    rq,
    rk,
    n_q,
    n_k,
    dim,
    stride_q,
    stride_p,
    scale,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """scale * q[rq] P[rk]^T as an fp32 [BLOCK_Q, BLOCK_K] tile (zero outside the valid rows)."""
    s = tl.zeros([BLOCK_Q, BLOCK_K], dtype=tl.float32)
    for d0 in range(0, dim, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        q = tl.load(
            q_ptr + rq[:, None] * stride_q + rd[None, :], mask=(rq < n_q)[:, None] & (rd < dim)[None, :], other=0.0
        ).to(tl.float32)
        pt = tl.load(
            p_ptr + rk[None, :] * stride_p + rd[:, None], mask=(rk < n_k)[None, :] & (rd < dim)[:, None], other=0.0
        ).to(tl.float32)
        s += tl.dot(q, pt, input_precision="ieee")
    return s * scale


@triton.jit
def _forward_kernel(
    q_ptr,
    p_ptr,
    v_ptr,
    out_ptr,
    lse_ptr,
    n_q,
    n_k,
    dim,
    dim_v,
    scale,
    stride_q,
    stride_p,
    stride_v,
    stride_out,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    n_cblocks = tl.cdiv(dim_v, BLOCK_DV)
    qblock, cblock = tl.program_id(0) // n_cblocks, tl.program_id(0) % n_cblocks
    rq = qblock.to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)  # 64-bit offsets
    rc = cblock * BLOCK_DV + tl.arange(0, BLOCK_DV)
    in_q, in_c = rq < n_q, rc < dim_v
    row_max = tl.full([BLOCK_Q], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_Q], dtype=tl.float32)
    acc = tl.zeros([BLOCK_Q, BLOCK_DV], dtype=tl.float32)
    for k0 in range(0, n_k, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        s = _score_tile(q_ptr, p_ptr, rq, rk, n_q, n_k, dim, stride_q, stride_p, scale, BLOCK_Q, BLOCK_K, BLOCK_D)
        s = tl.where((rk < n_k)[None, :], s, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(s, axis=1))  # finite: every block has a valid pattern
        rescale = tl.exp(row_max - new_max)
        e = tl.exp(s - new_max[:, None])
        row_sum = row_sum * rescale + tl.sum(e, axis=1)
        v = tl.load(
            v_ptr + rk[:, None] * stride_v + rc[None, :], mask=(rk < n_k)[:, None] & in_c[None, :], other=0.0
        ).to(tl.float32)
        acc = acc * rescale[:, None] + tl.dot(e, v, input_precision="ieee")
        row_max = new_max
    tl.store(
        out_ptr + rq[:, None] * stride_out + rc[None, :],
        (acc / row_sum[:, None]).to(out_ptr.dtype.element_ty),
        mask=in_q[:, None] & in_c[None, :],
    )
    if cblock == 0:
        tl.store(lse_ptr + rq, row_max + tl.log(row_sum), mask=in_q)


@triton.jit
def _backward_scores_kernel(
    q_ptr,
    p_ptr,
    v_ptr,
    out_ptr,
    go_ptr,
    lse_ptr,
    a_ptr,
    ds_ptr,
    n_q,
    n_k,
    dim,
    dim_v,
    scale,
    stride_q,
    stride_p,
    stride_v,
    stride_out,
    stride_go,
    stride_a,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    n_kblocks = tl.cdiv(n_k, BLOCK_K)
    qblock, kblock = tl.program_id(0) // n_kblocks, tl.program_id(0) % n_kblocks
    rq = qblock.to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)  # 64-bit offsets
    rk = kblock.to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    in_q, in_k = rq < n_q, rk < n_k
    s = _score_tile(q_ptr, p_ptr, rq, rk, n_q, n_k, dim, stride_q, stride_p, scale, BLOCK_Q, BLOCK_K, BLOCK_D)
    lse = tl.load(lse_ptr + rq, mask=in_q, other=0.0)
    tile = in_q[:, None] & in_k[None, :]
    a = tl.where(tile, tl.exp(s - lse[:, None]), 0.0)
    da = tl.zeros([BLOCK_Q, BLOCK_K], dtype=tl.float32)
    delta = tl.zeros([BLOCK_Q], dtype=tl.float32)
    for c0 in range(0, dim_v, BLOCK_DV):
        rc = c0 + tl.arange(0, BLOCK_DV)
        rows = in_q[:, None] & (rc < dim_v)[None, :]
        go = tl.load(go_ptr + rq[:, None] * stride_go + rc[None, :], mask=rows, other=0.0).to(tl.float32)
        out = tl.load(out_ptr + rq[:, None] * stride_out + rc[None, :], mask=rows, other=0.0).to(tl.float32)
        vt = tl.load(
            v_ptr + rk[None, :] * stride_v + rc[:, None], mask=in_k[None, :] & (rc < dim_v)[:, None], other=0.0
        ).to(tl.float32)
        da += tl.dot(go, vt, input_precision="ieee")
        delta += tl.sum(go * out, axis=1)
    ds = a * (da - delta[:, None]) * scale
    tl.store(a_ptr + rq[:, None] * stride_a + rk[None, :], a, mask=tile)
    tl.store(ds_ptr + rq[:, None] * stride_a + rk[None, :], ds, mask=tile)


@triton.jit
def _product_kernel(
    x_ptr,
    y_ptr,
    out_ptr,
    n_rows,
    n_x,
    n_y,
    stride_x_row,
    stride_x_col,
    stride_y,
    stride_out,
    BLOCK_R: tl.constexpr,
    BLOCK_X: tl.constexpr,
    BLOCK_Y: tl.constexpr,
):
    """out[n_x, n_y] = x^T y for x [n_rows, n_x] (any strides) and y [n_rows, n_y] (row-major);
    each program owns one output tile and sums over the rows in order."""
    n_yblocks = tl.cdiv(n_y, BLOCK_Y)
    xblock, yblock = tl.program_id(0) // n_yblocks, tl.program_id(0) % n_yblocks
    rx = xblock.to(tl.int64) * BLOCK_X + tl.arange(0, BLOCK_X)  # 64-bit offsets
    ry = yblock * BLOCK_Y + tl.arange(0, BLOCK_Y)
    acc = tl.zeros([BLOCK_X, BLOCK_Y], dtype=tl.float32)
    for r0 in range(0, n_rows, BLOCK_R):
        rr = r0 + tl.arange(0, BLOCK_R).to(tl.int64)
        xt = tl.load(
            x_ptr + rr[None, :] * stride_x_row + rx[:, None] * stride_x_col,
            mask=(rr < n_rows)[None, :] & (rx < n_x)[:, None],
            other=0.0,
        ).to(tl.float32)
        y = tl.load(
            y_ptr + rr[:, None] * stride_y + ry[None, :], mask=(rr < n_rows)[:, None] & (ry < n_y)[None, :], other=0.0
        ).to(tl.float32)
        acc += tl.dot(xt, y, input_precision="ieee")
    tl.store(
        out_ptr + rx[:, None] * stride_out + ry[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=(rx < n_x)[:, None] & (ry < n_y)[None, :],
    )


BLOCK_Q, BLOCK_K, BLOCK_R = 32, 64, 16
NUM_WARPS = 8


def _block(n: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(n)))


def _blocks(n_k: int, dim: int, dim_v: int) -> tuple[int, int, int, int]:
    """(BLOCK_Q, BLOCK_K, BLOCK_D, BLOCK_DV) of the forward and backward-scores kernels."""
    return BLOCK_Q, _block(n_k, BLOCK_K), _block(dim, 32), _block(dim_v, 64)


def forward_grid(n_q: int, n_k: int, dim: int, dim_v: int) -> tuple:
    """One program per (block of queries, block of value columns)."""
    bq, _, _, bdv = _blocks(n_k, dim, dim_v)
    return (cdiv(n_q, bq) * cdiv(dim_v, bdv),)


def backward_scores_grid(n_q: int, n_k: int, dim: int, dim_v: int) -> tuple:
    """One program per (block of queries, block of patterns)."""
    bq, bk, _, _ = _blocks(n_k, dim, dim_v)
    return (cdiv(n_q, bq) * cdiv(n_k, bk),)


def _product_blocks(n_x: int, n_y: int) -> tuple[int, int]:
    return _block(n_x, 64), _block(n_y, 64)


def product_grid(n_x: int, n_y: int) -> tuple:
    """One program per [BLOCK_X, BLOCK_Y] tile of the [n_x, n_y] product."""
    bx, by = _product_blocks(n_x, n_y)
    return (cdiv(n_x, bx) * cdiv(n_y, by),)


def launch_grids(n_q: int, n_k: int, dim: int, dim_v: int) -> dict[str, tuple]:
    """The grid of every launch of forward() and backward() for query [n_q, dim], patterns
    [n_k, dim] and values [n_k, dim_v]."""
    return {
        "forward/_forward_kernel": forward_grid(n_q, n_k, dim, dim_v),
        "backward/_backward_scores_kernel": backward_scores_grid(n_q, n_k, dim, dim_v),
        "backward/_product_kernel (queries)": product_grid(n_q, dim),
        "backward/_product_kernel (patterns)": product_grid(n_k, dim),
        "backward/_product_kernel (values)": product_grid(n_k, dim_v),
    }


def forward(query: torch.Tensor, patterns: torch.Tensor, values: torch.Tensor, scale: float):
    """(out [Q, dim_v], lse [Q] fp32) for contiguous query [Q, dim], patterns [K, dim], values [K, dim_v]."""
    n_q, dim = query.shape
    n_k, dim_v = values.shape
    out = torch.empty((n_q, dim_v), dtype=query.dtype, device=query.device)
    lse = torch.empty(n_q, dtype=torch.float32, device=query.device)
    bq, bk, bd, bdv = _blocks(n_k, dim, dim_v)
    _forward_kernel[forward_grid(n_q, n_k, dim, dim_v)](
        query,
        patterns,
        values,
        out,
        lse,
        n_q,
        n_k,
        dim,
        dim_v,
        float(scale),
        query.stride(0),
        patterns.stride(0),
        values.stride(0),
        out.stride(0),
        BLOCK_Q=bq,
        BLOCK_K=bk,
        BLOCK_D=bd,
        BLOCK_DV=bdv,
        num_warps=NUM_WARPS,
        **TOLERANT,
    )
    return out, lse


def _product(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x^T y for x [R, n_x] (any strides) and a row-major y [R, n_y]."""
    n_rows, n_x = x.shape
    n_y = y.shape[1]
    out = torch.empty((n_x, n_y), dtype=dtype, device=x.device)
    bx, by = _product_blocks(n_x, n_y)
    _product_kernel[product_grid(n_x, n_y)](
        x,
        y,
        out,
        n_rows,
        n_x,
        n_y,
        x.stride(0),
        x.stride(1),
        y.stride(0),
        out.stride(0),
        BLOCK_R=BLOCK_R,
        BLOCK_X=bx,
        BLOCK_Y=by,
        num_warps=NUM_WARPS,
        **TOLERANT,
    )
    return out


def backward(grad_out, query, patterns, values, out, lse, scale: float):
    """(dq, dP from the scores, dV) of one retrieval step whose forward gave (out, lse); contiguous inputs."""
    n_q, dim = query.shape
    n_k, dim_v = values.shape
    a = torch.empty((n_q, n_k), dtype=torch.float32, device=query.device)
    ds = torch.empty_like(a)
    bq, bk, bd, bdv = _blocks(n_k, dim, dim_v)
    _backward_scores_kernel[backward_scores_grid(n_q, n_k, dim, dim_v)](
        query,
        patterns,
        values,
        out,
        grad_out,
        lse,
        a,
        ds,
        n_q,
        n_k,
        dim,
        dim_v,
        float(scale),
        query.stride(0),
        patterns.stride(0),
        values.stride(0),
        out.stride(0),
        grad_out.stride(0),
        a.stride(0),
        BLOCK_Q=bq,
        BLOCK_K=bk,
        BLOCK_D=bd,
        BLOCK_DV=bdv,
        num_warps=NUM_WARPS,
        **TOLERANT,
    )
    dq = _product(ds.t(), patterns, query.dtype)
    d_patterns = _product(ds, query, patterns.dtype)
    d_values = _product(a, grad_out, values.dtype)
    return dq, d_patterns, d_values
