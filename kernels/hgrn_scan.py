"""Triton kernels of hgrn_scan: one program per block of neurons, the time loop inside.

Forward h_t = exp(g_t) * h_{t-1} + x_t; backward one reverse pass carrying c = dL/dh_t from the
steps after t (dL/dh_final at the end), writing dx_t = a_t and dg_t = a_t h_{t-1} exp(g_t) and
ending with dh0 (see sparsespike/ops/hgrn_scan.py). Arithmetic in the input's dtype. Pointer +
mask code only, for triton 3.6+ and TRITON_INTERPRET=1; pointers advance row by row and the
neuron offsets are 64-bit, so no offset overflows 32 bits.

Compared with the reference at a tolerance, not bit for bit (exp is Triton's, not torch's): both
kernels launch with _launch.TOLERANT (enable_fp_fusion=True), so on a GPU a multiply-add such as
exp(g) * h + x may be contracted into one fused multiply-add, rounded once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import TOLERANT, cdiv

BLOCK = 128


@triton.jit
def _hgrn_forward_kernel(x_ptr, g_ptr, h0_ptr, h_ptr, hf_ptr, steps, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # 64-bit offsets
    m = offs < n
    h = tl.load(h0_ptr + offs, mask=m, other=0)
    xp, gp, hp = x_ptr + offs, g_ptr + offs, h_ptr + offs
    for _ in range(0, steps):
        x = tl.load(xp, mask=m, other=0)
        g = tl.load(gp, mask=m, other=0)
        h = tl.exp(g) * h + x
        tl.store(hp, h, mask=m)
        xp += n
        gp += n
        hp += n
    tl.store(hf_ptr + offs, h, mask=m)


@triton.jit
def _reverse_step(gh_p, g_p, gx_p, gg_p, h_prev, c, m, HAS_GH: tl.constexpr):
    """One reverse step at the given row pointers: stores dx and dg, returns the carry to t - 1."""
    g = tl.load(g_p, mask=m, other=0)
    a = c
    if HAS_GH:
        a = a + tl.load(gh_p, mask=m, other=0)
    e = tl.exp(g)
    tl.store(gx_p, a, mask=m)
    tl.store(gg_p, (a * h_prev) * e, mask=m)
    return e * a


@triton.jit
def _hgrn_backward_kernel(
    gh_ptr,
    ghf_ptr,
    g_ptr,
    h_ptr,
    h0_ptr,
    gx_ptr,
    gg_ptr,
    gh0_ptr,
    steps,
    n,
    gh_step,
    last_row,
    last_gh_row,
    HAS_GH: tl.constexpr,
    HAS_GHF: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # 64-bit offsets
    m = offs < n
    h0 = tl.load(h0_ptr + offs, mask=m, other=0)
    c = tl.zeros([BLOCK], dtype=h0.dtype)
    if HAS_GHF:
        c += tl.load(ghf_ptr + offs, mask=m, other=0)
    # rows steps - 1 .. 1 (previous state in h), then row 0 (previous state h0)
    # last_row = (steps - 1) * n and last_gh_row = (steps - 1) * gh_step come from the host, as
    # 64-bit integers where they need it
    gp, gxp, ggp = g_ptr + last_row + offs, gx_ptr + last_row + offs, gg_ptr + last_row + offs
    hp = h_ptr + last_row - n + offs
    ghp = gh_ptr + last_gh_row + offs
    for _ in range(0, steps - 1):
        h_prev = tl.load(hp, mask=m, other=0)
        c = _reverse_step(ghp, gp, gxp, ggp, h_prev, c, m, HAS_GH)
        gp -= n
        gxp -= n
        ggp -= n
        hp -= n
        ghp -= gh_step
    c = _reverse_step(ghp, gp, gxp, ggp, h0, c, m, HAS_GH)
    tl.store(gh0_ptr + offs, c, mask=m)


def grid(n: int) -> tuple:
    """The grid of both kernels over n neurons: one program per block of BLOCK."""
    return (cdiv(n, BLOCK),)


def launch_grids(steps: int, n: int) -> dict[str, tuple]:
    """The grid of every launch for x, g [steps, n]."""
    return {"_hgrn_forward_kernel": grid(n), "_hgrn_backward_kernel": grid(n)}


def forward(x: torch.Tensor, g: torch.Tensor, h0: torch.Tensor):
    """(h [T, M], h_final [M]) of x, g [T, M] from h0 [M]."""
    x, g, h0 = x.contiguous(), g.contiguous(), h0.contiguous()
    steps, n = x.shape
    h, h_final = torch.empty_like(x), torch.empty_like(h0)
    _hgrn_forward_kernel[grid(n)](x, g, h0, h, h_final, steps, n, BLOCK=BLOCK, **TOLERANT)
    return h, h_final


def backward(grad_h, grad_h_final, g, h, h0):
    """Gradients (x, g, h0). A grad_h broadcast over time (stride 0) is read as one row."""
    g, h, h0 = g.contiguous(), h.contiguous(), h0.contiguous()
    steps, n = g.shape
    gh_step = n
    if grad_h is not None:
        if grad_h.stride(0) == 0:
            grad_h, gh_step = grad_h[0].contiguous(), 0
        else:
            grad_h = grad_h.contiguous()
    grads = (torch.empty_like(g), torch.empty_like(g), torch.empty_like(h0))
    _hgrn_backward_kernel[grid(n)](
        g if grad_h is None else grad_h,
        h0 if grad_h_final is None else grad_h_final.contiguous(),
        g,
        h,
        h0,
        *grads,
        steps,
        n,
        gh_step,
        (steps - 1) * n,
        (steps - 1) * gh_step,
        HAS_GH=grad_h is not None,
        HAS_GHF=grad_h_final is not None,
        BLOCK=BLOCK,
        **TOLERANT,
    )
    return grads
