"""Triton kernels of one modern-Hopfield retrieval step: out = softmax(scale * q P^T) V.

Forward, one program per block of queries: S = q P^T accumulates over feature chunks with
tl.dot, the row softmax runs in registers (all K stored patterns in one block, K <= 1024), then
out = A V is written chunk by chunk of the value width; the row log-sum-exp is kept for backward.
Backward: one program per block of queries recomputes A from the log-sum-exp, forms
dA = dO V^T, dS = scale * A * (dA - rowsum(A * dA)) and dq = dS P, and writes A and dS; then
dP = dS^T q and dV = A^T dO come from one transposed-product kernel whose programs own their
output tiles and loop over the queries in order: no atomics, deterministic. Accumulation in fp32
with IEEE products (no TF32), so results agree with the fp32 reference at fp32 tolerances.

Fusion: compared with the reference at a tolerance, not bit for bit (tl.dot sums in its own order,
exp and log are Triton's), so every kernel launches with _launch.TOLERANT (enable_fp_fusion=True):
on a GPU multiply-adds outside tl.dot (the softmax's and dS's) may be contracted into fused
multiply-adds.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import TOLERANT, cdiv

MAX_PATTERNS = 1024  # all stored patterns live in one register block


@triton.jit
def _scores(
    q_ptr,
    p_ptr,
    rq,
    rk,
    n_q,
    n_k,
    dim,
    stride_q,
    stride_p,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """S[BLOCK_Q, BLOCK_K] = q[rq] P[rk]^T (zero outside the valid rows)."""
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
    return s


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
    rq = (tl.program_id(0) * BLOCK_Q).to(tl.int64) + tl.arange(0, BLOCK_Q)  # 64-bit offsets
    rk = tl.arange(0, BLOCK_K)
    s = _scores(q_ptr, p_ptr, rq, rk, n_q, n_k, dim, stride_q, stride_p, BLOCK_Q, BLOCK_K, BLOCK_D) * scale
    s = tl.where((rk < n_k)[None, :], s, float("-inf"))
    m = tl.max(s, axis=1)
    e = tl.exp(s - m[:, None])
    total = tl.sum(e, axis=1)
    a = e / total[:, None]
    tl.store(lse_ptr + rq, m + tl.log(total), mask=rq < n_q)
    for c0 in range(0, dim_v, BLOCK_DV):
        rc = c0 + tl.arange(0, BLOCK_DV)
        v = tl.load(
            v_ptr + rk[:, None] * stride_v + rc[None, :], mask=(rk < n_k)[:, None] & (rc < dim_v)[None, :], other=0.0
        ).to(tl.float32)
        o = tl.dot(a, v, input_precision="ieee")
        tl.store(
            out_ptr + rq[:, None] * stride_out + rc[None, :],
            o.to(out_ptr.dtype.element_ty),
            mask=(rq < n_q)[:, None] & (rc < dim_v)[None, :],
        )


@triton.jit
def _backward_queries_kernel(
    q_ptr,
    p_ptr,
    v_ptr,
    go_ptr,
    lse_ptr,
    a_ptr,
    ds_ptr,
    dq_ptr,
    n_q,
    n_k,
    dim,
    dim_v,
    scale,
    stride_q,
    stride_p,
    stride_v,
    stride_go,
    stride_a,
    stride_dq,
    BLOCK_Q: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
):
    rq = (tl.program_id(0) * BLOCK_Q).to(tl.int64) + tl.arange(0, BLOCK_Q)  # 64-bit offsets
    rk = tl.arange(0, BLOCK_K)
    in_q, in_k = rq < n_q, rk < n_k
    s = _scores(q_ptr, p_ptr, rq, rk, n_q, n_k, dim, stride_q, stride_p, BLOCK_Q, BLOCK_K, BLOCK_D) * scale
    lse = tl.load(lse_ptr + rq, mask=in_q, other=0.0)
    a = tl.where(in_k[None, :] & in_q[:, None], tl.exp(s - lse[:, None]), 0.0)
    da = tl.zeros([BLOCK_Q, BLOCK_K], dtype=tl.float32)
    for c0 in range(0, dim_v, BLOCK_DV):
        rc = c0 + tl.arange(0, BLOCK_DV)
        go = tl.load(
            go_ptr + rq[:, None] * stride_go + rc[None, :], mask=in_q[:, None] & (rc < dim_v)[None, :], other=0.0
        ).to(tl.float32)
        vt = tl.load(
            v_ptr + rk[None, :] * stride_v + rc[:, None], mask=in_k[None, :] & (rc < dim_v)[:, None], other=0.0
        ).to(tl.float32)
        da += tl.dot(go, vt, input_precision="ieee")
    delta = tl.sum(a * da, axis=1)
    ds = a * (da - delta[:, None]) * scale
    tile = in_q[:, None] & in_k[None, :]
    tl.store(a_ptr + rq[:, None] * stride_a + rk[None, :], a, mask=tile)
    tl.store(ds_ptr + rq[:, None] * stride_a + rk[None, :], ds, mask=tile)
    for d0 in range(0, dim, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        p = tl.load(
            p_ptr + rk[:, None] * stride_p + rd[None, :], mask=in_k[:, None] & (rd < dim)[None, :], other=0.0
        ).to(tl.float32)
        dq = tl.dot(ds, p, input_precision="ieee")
        tl.store(
            dq_ptr + rq[:, None] * stride_dq + rd[None, :],
            dq.to(dq_ptr.dtype.element_ty),
            mask=in_q[:, None] & (rd < dim)[None, :],
        )


@triton.jit
def _transposed_product_kernel(
    x_ptr,
    y_ptr,
    out_ptr,
    n_rows,
    n_x,
    n_y,
    stride_x,
    stride_y,
    stride_out,
    BLOCK_R: tl.constexpr,
    BLOCK_X: tl.constexpr,
    BLOCK_Y: tl.constexpr,
):
    """out[rx, ry] = sum over rows of x[:, rx]^T y[:, ry]; each program owns one output tile."""
    rx = (tl.program_id(0) * BLOCK_X).to(tl.int64) + tl.arange(0, BLOCK_X)
    ry = tl.program_id(1) * BLOCK_Y + tl.arange(0, BLOCK_Y)
    acc = tl.zeros([BLOCK_X, BLOCK_Y], dtype=tl.float32)
    for r0 in range(0, n_rows, BLOCK_R):
        rr = r0 + tl.arange(0, BLOCK_R).to(tl.int64)  # 64-bit offsets
        xt = tl.load(
            x_ptr + rr[None, :] * stride_x + rx[:, None], mask=(rr < n_rows)[None, :] & (rx < n_x)[:, None], other=0.0
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


def _block(n: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(n)))


def _blocks(n_k: int, dim: int, dim_v: int):
    block_k = max(16, triton.next_power_of_2(n_k))
    block_q = 16 if block_k > 256 else 32
    return block_q, block_k, _block(dim, 64), _block(dim_v, 64)


def queries_grid(n_q: int, n_k: int, dim: int, dim_v: int) -> tuple:
    """The forward and the backward-queries kernels: one program per block of queries."""
    return (cdiv(n_q, _blocks(n_k, dim, dim_v)[0]),)


def _transposed_blocks(n_x: int, n_y: int) -> tuple[int, int]:
    return _block(n_x, 64), _block(n_y, 64)


def transposed_product_grid(n_x: int, n_y: int) -> tuple:
    """One program per [BLOCK_X, BLOCK_Y] tile of the [n_x, n_y] product."""
    bx, by = _transposed_blocks(n_x, n_y)
    return (cdiv(n_x, bx), cdiv(n_y, by))


def launch_grids(n_q: int, n_k: int, dim: int, dim_v: int) -> dict[str, tuple]:
    """The grid of every launch of forward() and backward() for query [n_q, dim], patterns
    [n_k, dim] and values [n_k, dim_v]."""
    return {
        "forward/_forward_kernel": queries_grid(n_q, n_k, dim, dim_v),
        "backward/_backward_queries_kernel": queries_grid(n_q, n_k, dim, dim_v),
        "backward/_transposed_product_kernel (patterns)": transposed_product_grid(n_k, dim),
        "backward/_transposed_product_kernel (values)": transposed_product_grid(n_k, dim_v),
    }


def forward(query: torch.Tensor, patterns: torch.Tensor, values: torch.Tensor, scale: float):
    """(out [Q, dim_v], lse [Q] fp32) for contiguous query [Q, dim], patterns [K, dim], values [K, dim_v]."""
    n_q, dim = query.shape
    n_k, dim_v = values.shape
    out = torch.empty((n_q, dim_v), dtype=query.dtype, device=query.device)
    lse = torch.empty(n_q, dtype=torch.float32, device=query.device)
    bq, bk, bd, bdv = _blocks(n_k, dim, dim_v)
    _forward_kernel[queries_grid(n_q, n_k, dim, dim_v)](
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
        **TOLERANT,
    )
    return out, lse


def _transposed_product(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    n_rows, n_x = x.shape
    n_y = y.shape[1]
    out = torch.empty((n_x, n_y), dtype=dtype, device=x.device)
    bx, by = _transposed_blocks(n_x, n_y)
    _transposed_product_kernel[transposed_product_grid(n_x, n_y)](
        x,
        y,
        out,
        n_rows,
        n_x,
        n_y,
        x.stride(0),
        y.stride(0),
        out.stride(0),
        BLOCK_R=32,
        BLOCK_X=bx,
        BLOCK_Y=by,
        **TOLERANT,
    )
    return out


def backward(grad_out, query, patterns, values, lse, scale: float):
    """(dq, dP from the scores, dV) of one retrieval step; contiguous inputs."""
    n_q, dim = query.shape
    n_k, dim_v = values.shape
    a = torch.empty((n_q, n_k), dtype=torch.float32, device=query.device)
    ds = torch.empty_like(a)
    dq = torch.empty_like(query)
    bq, bk, bd, bdv = _blocks(n_k, dim, dim_v)
    _backward_queries_kernel[queries_grid(n_q, n_k, dim, dim_v)](
        query,
        patterns,
        values,
        grad_out,
        lse,
        a,
        ds,
        dq,
        n_q,
        n_k,
        dim,
        dim_v,
        float(scale),
        query.stride(0),
        patterns.stride(0),
        values.stride(0),
        grad_out.stride(0),
        a.stride(0),
        dq.stride(0),
        BLOCK_Q=bq,
        BLOCK_K=bk,
        BLOCK_D=bd,
        BLOCK_DV=bdv,
        **TOLERANT,
    )
    d_patterns = _transposed_product(ds, query, patterns.dtype)
    d_values = _transposed_product(a, grad_out, values.dtype)
    return dq, d_patterns, d_values
