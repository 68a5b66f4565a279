"""Triton kernels of lif: one program per block of neurons, the time loop inside.

Forward and backward follow the recurrences of sparsespike/ops/lif_reference.py (the membrane
step is lif_step.py's, shared with the spiking Hopfield kernel); the backward is one reverse pass
that carries c = dL/dv (the gradient reaching the membrane from later steps), ending with the
gradient of v0. Flags (convention, reset, detach, surrogate kind, decay_input) are
compile-time constants; the surrogate parameter is a runtime value. Pointer + mask code only,
for triton 3.6+ and TRITON_INTERPRET=1. Both kernels launch without floating-point contraction
(_launch.EXACT, enable_fp_fusion=False): every multiply and add rounds on its own, as eager torch
rounds the reference op by op, so compiled for a GPU the spikes and membranes keep the
reference's bit for bit (a fused multiply-add could round a membrane at the threshold to the
other side), and so do the spikes the backward recomputes from the saved trace. The gradients
promise a tolerance, not bits: the surrogates are written in their own arrangement (sigmoid as
e / (1 + e)^2) with Triton's exp, whose float64 version is the math library's and carries its own
fused multiply-adds.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import EXACT, cdiv
from .lif_step import snntorch_spike, snntorch_step, spikingjelly_charge, spikingjelly_reset, spikingjelly_spike

SNNTORCH, SPIKINGJELLY = 0, 1
SUBTRACT, ZERO, NONE = 0, 1, 2
BLOCK = 128


@triton.jit
def _surrogate(u, p, band, KIND: tl.constexpr):
    """d spike / d u, zero where |u| >= band (band = inf: no band)."""
    if KIND == 0:  # fast sigmoid
        d = 1.0 + p * tl.abs(u)
        g = 1.0 / (d * d)
    elif KIND == 1:  # atan
        z = 3.141592653589793 * p * u / 2.0
        g = (p / 2.0) / (1.0 + z * z)
    elif KIND == 2:  # sigmoid: s (1 - s) = e / (1 + e)^2 with e = exp(-p|u|) <= 1, no overflow
        e = tl.exp(-p * tl.abs(u))
        g = p * e / ((1.0 + e) * (1.0 + e))
    else:  # triangle
        g = p * tl.maximum(1.0 - p * tl.abs(u), 0.0)
    return tl.where(tl.abs(u) < band, g, 0.0)


@triton.jit
def _lif_forward_kernel(
    x_ptr,
    beta_ptr,
    th_ptr,
    v0_ptr,
    s_ptr,
    tr_ptr,
    vf_ptr,
    band_ptr,
    steps,
    n,
    band_width,
    CONV: tl.constexpr,
    RESET: tl.constexpr,
    DECAY: tl.constexpr,
    HAS_BAND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # 64-bit offsets
    m = offs < n
    b = tl.load(beta_ptr + offs, mask=m, other=0)
    th = tl.load(th_ptr + offs, mask=m, other=1)
    v = tl.load(v0_ptr + offs, mask=m, other=0)
    xp, sp, tp, bp = x_ptr + offs, s_ptr + offs, tr_ptr + offs, band_ptr + offs
    for _ in range(0, steps):
        x = tl.load(xp, mask=m, other=0)
        if CONV == 0:
            v = snntorch_step(v, x, b, th, RESET)
            s = snntorch_spike(v, th)
            trace = v
        else:
            h = spikingjelly_charge(v, x, b, DECAY)
            s = spikingjelly_spike(h, th)
            trace = h
            v = spikingjelly_reset(h, s, th, RESET)
        tl.store(tp, trace, mask=m)
        tl.store(sp, s, mask=m)
        if HAS_BAND:  # the band-active set: the surrogate is nonzero here
            tl.store(bp, (tl.abs(trace - th) < band_width).to(tl.uint8), mask=m)
            bp += n
        xp += n
        sp += n
        tp += n
    tl.store(vf_ptr + offs, v, mask=m)


@triton.jit
def _snntorch_step_grad(
    v_t, v_prev, gs, gtr, c, b, th, p, band, RESET: tl.constexpr, LIVE: tl.constexpr, KIND: tl.constexpr
):
    """One reverse step: (dL/dI_t, dbeta_t, dtheta_t, carry to v_{t-1})."""
    sig_t = _surrogate(v_t - th, p, band, KIND)
    a = gtr + gs * sig_t + c
    r = snntorch_spike(v_prev, th)  # this step's reset: the spike of the membrane before it
    if RESET == 1:
        dbeta = a * (1.0 - r) * v_prev
        carry = a * b * (1.0 - r)
    else:
        dbeta = a * v_prev
        carry = a * b
    dth = -gs * sig_t
    if RESET == 0:
        dth = dth - a * r
    if LIVE:
        sig_prev = _surrogate(v_prev - th, p, band, KIND)
        if RESET == 0:
            dvdr = -th + 0.0 * v_prev
        else:
            dvdr = -b * v_prev
        dth = dth - a * dvdr * sig_prev
        carry = carry + a * dvdr * sig_prev
    return a, dbeta, dth, carry


@triton.jit
def _spikingjelly_step_grad(
    h,
    v_prev,
    x,
    gs,
    gtr,
    c,
    b,
    th,
    p,
    band,
    RESET: tl.constexpr,
    LIVE: tl.constexpr,
    KIND: tl.constexpr,
    DECAY: tl.constexpr,
):
    s = spikingjelly_spike(h, th)
    sig = _surrogate(h - th, p, band, KIND)
    ds = gs
    if LIVE:
        if RESET == 0:
            ds = ds - c * th
        else:
            ds = ds - c * h
    if RESET == 1:
        dh = gtr + c * (1.0 - s) + ds * sig
    else:
        dh = gtr + c + ds * sig
    if DECAY:
        gx = dh * (1.0 - b)
        dbeta = dh * (v_prev - x)
    else:
        gx = dh
        dbeta = dh * v_prev
    dth = -ds * sig
    if RESET == 0:
        dth = dth - c * s
    return gx, dbeta, dth, dh * b


@triton.jit
def _load_or_zero(ptr, off, m, like, PRESENT: tl.constexpr):
    if PRESENT:
        value = tl.load(ptr + off, mask=m, other=0)
    else:
        value = 0.0 * like
    return value


@triton.jit
def _reverse_step(
    gs_ptr,
    gtr_ptr,
    x_ptr,
    tr_ptr,
    off,
    m,
    v_prev,
    c,
    b,
    th,
    p,
    band,
    CONV: tl.constexpr,
    RESET: tl.constexpr,
    LIVE: tl.constexpr,
    KIND: tl.constexpr,
    DECAY: tl.constexpr,
    HAS_GS: tl.constexpr,
    HAS_GTR: tl.constexpr,
):
    """Loads step `off` and returns (dL/dI, dbeta, dtheta, carry) given the membrane before it."""
    cur = tl.load(tr_ptr + off, mask=m, other=0)
    gs = _load_or_zero(gs_ptr, off, m, cur, HAS_GS)
    gtr = _load_or_zero(gtr_ptr, off, m, cur, HAS_GTR)
    if CONV == 0:
        gx, db, dt, carry = _snntorch_step_grad(cur, v_prev, gs, gtr, c, b, th, p, band, RESET, LIVE, KIND)
    else:
        x = _load_or_zero(x_ptr, off, m, cur, DECAY)
        gx, db, dt, carry = _spikingjelly_step_grad(
            cur, v_prev, x, gs, gtr, c, b, th, p, band, RESET, LIVE, KIND, DECAY
        )
    return gx, db, dt, carry


@triton.jit
def _lif_backward_kernel(
    gs_ptr,
    gtr_ptr,
    gvf_ptr,
    x_ptr,
    tr_ptr,
    beta_ptr,
    th_ptr,
    v0_ptr,
    gx_ptr,
    gb_ptr,
    gth_ptr,
    gv0_ptr,
    steps,
    n,
    p,
    band,
    CONV: tl.constexpr,
    RESET: tl.constexpr,
    LIVE: tl.constexpr,
    KIND: tl.constexpr,
    DECAY: tl.constexpr,
    HAS_GS: tl.constexpr,
    HAS_GTR: tl.constexpr,
    HAS_GVF: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # 64-bit offsets
    m = offs < n
    b = tl.load(beta_ptr + offs, mask=m, other=0)
    th = tl.load(th_ptr + offs, mask=m, other=1)
    v0 = tl.load(v0_ptr + offs, mask=m, other=0)
    c = tl.zeros([BLOCK], dtype=v0.dtype)
    if HAS_GVF:
        c += tl.load(gvf_ptr + offs, mask=m, other=0)
    dbeta = tl.zeros([BLOCK], dtype=v0.dtype)
    dth = tl.zeros([BLOCK], dtype=v0.dtype)
    n64 = tl.cast(n, tl.int64)  # 64-bit offsets: (steps - 1) * n passes 2^31 on long sequences
    last = (steps - 1) * n64
    # steps - 1 .. 1, whose previous membrane is in the trace; step 0 (previous = v0) after
    for i in range(0, steps - 1):
        off = last - i * n64 + offs
        prev = tl.load(tr_ptr + off - n, mask=m, other=0)
        if CONV == 1:
            # the membrane entering step t: the charged membrane of t - 1, after its reset
            prev = spikingjelly_reset(prev, spikingjelly_spike(prev, th), th, RESET)
        gx, db, dt, c = _reverse_step(
            gs_ptr,
            gtr_ptr,
            x_ptr,
            tr_ptr,
            off,
            m,
            prev,
            c,
            b,
            th,
            p,
            band,
            CONV,
            RESET,
            LIVE,
            KIND,
            DECAY,
            HAS_GS,
            HAS_GTR,
        )
        tl.store(gx_ptr + off, gx, mask=m)
        dbeta += db
        dth += dt
    gx, db, dt, c = _reverse_step(
        gs_ptr, gtr_ptr, x_ptr, tr_ptr, offs, m, v0, c, b, th, p, band, CONV, RESET, LIVE, KIND, DECAY, HAS_GS, HAS_GTR
    )
    tl.store(gx_ptr + offs, gx, mask=m)
    tl.store(gb_ptr + offs, dbeta + db, mask=m)
    tl.store(gth_ptr + offs, dth + dt, mask=m)
    tl.store(gv0_ptr + offs, c, mask=m)


def grid(n: int) -> tuple:
    """The grid of both kernels over n neurons: one program per block of BLOCK."""
    return (cdiv(n, BLOCK),)


def launch_grids(steps: int, n: int) -> dict[str, tuple]:
    """The grid of every launch for a current [steps, n]."""
    return {"_lif_forward_kernel": grid(n), "_lif_backward_kernel": grid(n)}


def forward(current: torch.Tensor, beta, threshold, v0, cfg, band_width=None):
    """(spikes, trace, v_final, band) of current [T, M] with per-neuron beta/threshold/v0 [M];
    band [T, M] bool (|trace - threshold| < band_width) with a band_width, else None."""
    current = current.contiguous()
    steps, n = current.shape
    spikes, trace = torch.empty_like(current), torch.empty_like(current)
    v_final = torch.empty_like(v0)
    band = None if band_width is None else torch.empty(current.shape, dtype=torch.bool, device=current.device)
    _lif_forward_kernel[grid(n)](
        current,
        beta.contiguous(),
        threshold.contiguous(),
        v0.contiguous(),
        spikes,
        trace,
        v_final,
        spikes if band is None else band.view(torch.uint8),
        steps,
        n,
        1.0 if band_width is None else float(band_width),
        CONV=cfg.convention,
        RESET=cfg.reset,
        DECAY=cfg.decay_input,
        HAS_BAND=band is not None,
        BLOCK=BLOCK,
        **EXACT,
    )
    return spikes, trace, v_final, band


def backward(grad_spikes, grad_trace, grad_v_final, current, trace, beta, threshold, v0, cfg):
    """Gradients (current, beta, threshold, v0), per element."""
    trace = trace.contiguous()
    steps, n = trace.shape
    grads = (torch.empty_like(trace), torch.empty_like(beta), torch.empty_like(threshold), torch.empty_like(v0))
    dummy = trace
    _lif_backward_kernel[grid(n)](
        dummy if grad_spikes is None else grad_spikes.contiguous(),
        dummy if grad_trace is None else grad_trace.contiguous(),
        dummy if grad_v_final is None else grad_v_final.contiguous(),
        dummy if current is None else current.contiguous(),
        trace,
        beta.contiguous(),
        threshold.contiguous(),
        v0.contiguous(),
        *grads,
        steps,
        n,
        cfg.surrogate_param,
        cfg.grad_band,
        CONV=cfg.convention,
        RESET=cfg.reset,
        LIVE=(not cfg.detach_reset) and cfg.reset != NONE,
        KIND=cfg.surrogate,
        DECAY=cfg.decay_input,
        HAS_GS=grad_spikes is not None,
        HAS_GTR=grad_trace is not None,
        HAS_GVF=grad_v_final is not None,
        BLOCK=BLOCK,
        **EXACT,
    )
    return grads
