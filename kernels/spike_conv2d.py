"""Triton kernels of spike_conv2d: an event-driven gather per output pixel, and the weight gradient
over active inputs.

Forward: the spikes, seen as NHWC rows (one row of C_in channels per input pixel), are compacted
into ELL lists of active channels (spike_linear's compaction kernel). One program per (output
pixel, block of output channels) walks its kernel taps; for each tap whose input pixel lies
inside the image it sums the rows W_t[(c, ky, kx), :] of the weight, laid out
[C_in * KH * KW, C_out], over the active channels c of that pixel.
Weight gradient: the spikes as [N * C_in, H * W] rows are compacted into lists of active pixels;
one program per (weight row (c, ky, kx), block of output channels) loops over the images and the
pixels where channel c fired, adding the grad_out row (NHWC) of the output pixel each one reaches
through tap (ky, kx): no atomics, fixed order, deterministic.
Masked input gradient: the mask, as NHWC rows, is compacted into each input pixel's listed
channels; one program per (input pixel, block of listed channels) sums, over the taps that carry
the pixel inside the output, the dot products of grad_out's NHWC row at that output pixel with
the weight rows W_t[(c, ky, kx), :] of its channels, and writes them (a pixel's channels are
distinct: no atomics); every other input's gradient stays zero.
Accumulation in fp32 (fp64 for fp64 weights). Pointer arithmetic and masks only; runs under
TRITON_INTERPRET=1.

Fusion: both kernels are compared with the reference (F.conv2d) at a tolerance, not bit for bit
(the sums run in another order than any conv2d algorithm's), and launch with _launch.TOLERANT
(enable_fp_fusion=True): on a GPU their multiply-adds may be contracted into fused multiply-adds.
The compaction is spike_linear's (_launch.EXACT: it copies values, no float arithmetic).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import TOLERANT, cdiv
from .spike_linear import _accumulator_dtype, compact_grid, compact_rows


@triton.jit
def _conv_gather_kernel(
    idx_ptr,
    val_ptr,
    cnt_ptr,
    w_ptr,
    bias_ptr,
    out_ptr,
    C_in,
    H,
    W,
    C_out,
    H_out,
    W_out,
    KH,
    KW,
    SH,
    SW,
    PH,
    PW,
    DH,
    DW,
    HAS_BIAS: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # (n * H_out + oy) * W_out + ox
    ox = pid % W_out
    oy = (pid // W_out) % H_out
    n = pid // (W_out * H_out)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    in_cols = cols < C_out
    acc = tl.zeros([BLOCK_N], dtype=val_ptr.dtype.element_ty)
    for ky in range(KH):
        iy = oy * SH - PH + ky * DH
        for kx in range(KW):
            ix = ox * SW - PW + kx * DW
            inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            row = tl.where(inside, (n * H + iy) * W + ix, 0)
            count = tl.where(inside, tl.load(cnt_ptr + row), 0)
            for j0 in range(0, count, BLOCK_K):
                js = j0 + tl.arange(0, BLOCK_K)
                in_list = js < count
                c = tl.load(idx_ptr + row * C_in + js, mask=in_list, other=0).to(tl.int64)
                v = tl.load(val_ptr + row * C_in + js, mask=in_list, other=0)
                w_row = (c * KH + ky) * KW + kx
                tile_mask = in_list[:, None] & in_cols[None, :]
                b = tl.load(w_ptr + w_row[:, None] * C_out + cols[None, :], mask=tile_mask, other=0)
                acc += tl.sum(v[:, None] * b.to(acc.dtype), axis=0)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=in_cols, other=0).to(acc.dtype)
    dst = ((n * C_out + cols) * H_out + oy) * W_out + ox
    tl.store(out_ptr + dst, acc.to(out_ptr.dtype.element_ty), mask=in_cols)


@triton.jit
def _conv_grad_weight_kernel(
    idx_ptr,
    val_ptr,
    cnt_ptr,
    g_ptr,
    out_ptr,
    N,
    C_in,
    H,
    W,
    C_out,
    H_out,
    W_out,
    KH,
    KW,
    SH,
    SW,
    PH,
    PW,
    DH,
    DW,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    r = tl.program_id(0).to(tl.int64)  # weight row (c * KH + ky) * KW + kx
    kx = r % KW
    ky = (r // KW) % KH
    c = r // (KW * KH)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    in_cols = cols < C_out
    acc = tl.zeros([BLOCK_N], dtype=val_ptr.dtype.element_ty)
    for n in range(N):
        plane = n * C_in + c
        count = tl.load(cnt_ptr + plane)
        for j0 in range(0, count, BLOCK_K):
            js = j0 + tl.arange(0, BLOCK_K)
            in_list = js < count
            p = tl.load(idx_ptr + plane * (H * W) + js, mask=in_list, other=0).to(tl.int64)
            v = tl.load(val_ptr + plane * (H * W) + js, mask=in_list, other=0)
            ny = p // W + PH - ky * DH
            nx = p % W + PW - kx * DW
            ok = in_list & (ny >= 0) & (nx >= 0)
            ny = tl.where(ok, ny, 0)
            nx = tl.where(ok, nx, 0)
            oy = ny // SH
            ox = nx // SW
            ok = ok & (ny % SH == 0) & (nx % SW == 0) & (oy < H_out) & (ox < W_out)
            q = tl.where(ok, (tl.cast(n, tl.int64) * H_out + oy) * W_out + ox, 0)  # 64-bit offsets
            tile_mask = ok[:, None] & in_cols[None, :]
            g = tl.load(g_ptr + q[:, None] * C_out + cols[None, :], mask=tile_mask, other=0)
            acc += tl.sum(v[:, None] * g.to(acc.dtype), axis=0)
    tl.store(out_ptr + r * C_out + cols, acc.to(out_ptr.dtype.element_ty), mask=in_cols)


@triton.jit
def _conv_masked_grad_kernel(
    idx_ptr,
    cnt_ptr,
    g_ptr,
    w_ptr,
    out_ptr,
    C_in,
    H,
    W,
    C_out,
    H_out,
    W_out,
    KH,
    KW,
    SH,
    SW,
    PH,
    PW,
    DH,
    DW,
    ACC_FP64: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_O: tl.constexpr,
):
    """out[n, c, iy, ix] for the channels c listed in this block of input pixel (n, iy, ix)'s
    mask list: sum over its valid taps of g[n, oy, ox, :] . W_t[(c, ky, kx), :]."""
    pixel = tl.program_id(0).to(tl.int64)  # (n * H + iy) * W + ix
    ix = pixel % W
    iy = (pixel // W) % H
    n = pixel // (W * H)
    first = tl.program_id(1) * BLOCK_K
    count = tl.load(cnt_ptr + pixel)
    if first < count:
        js = first + tl.arange(0, BLOCK_K)
        listed = js < count
        c = tl.load(idx_ptr + pixel * C_in + js, mask=listed, other=0).to(tl.int64)
        acc = tl.zeros([BLOCK_K], dtype=tl.float64 if ACC_FP64 else tl.float32)
        for ky in range(KH):
            ny = iy + PH - ky * DH
            oy = tl.where(ny >= 0, ny, 0) // SH
            row_ok = (ny >= 0) & (ny % SH == 0) & (oy < H_out)
            for kx in range(KW):
                nx = ix + PW - kx * DW
                ox = tl.where(nx >= 0, nx, 0) // SW
                if row_ok & (nx >= 0) & (nx % SW == 0) & (ox < W_out):
                    q = (n * H_out + oy) * W_out + ox
                    w_row = (c * KH + ky) * KW + kx
                    for o0 in range(0, C_out, BLOCK_O):
                        outs = o0 + tl.arange(0, BLOCK_O)
                        in_out = outs < C_out
                        g = tl.load(g_ptr + q * C_out + outs, mask=in_out, other=0).to(acc.dtype)
                        w = tl.load(
                            w_ptr + w_row[:, None] * C_out + outs[None, :],
                            mask=listed[:, None] & in_out[None, :],
                            other=0,
                        )
                        acc += tl.sum(w.to(acc.dtype) * g[None, :], axis=1)
        dst = ((n * C_in + c) * H + iy) * W + ix
        tl.store(out_ptr + dst, acc.to(out_ptr.dtype.element_ty), mask=listed)


BLOCK_K = 16  # active input channels per step of a pixel's list


def _block_n(c_out: int) -> int:
    return min(triton.next_power_of_2(max(c_out, 16)), 128)


def _num_warps(block_n: int) -> int:
    """One warp per 256 elements of the [BLOCK_K, BLOCK_N] tile, 1 to 4: with 4 warps on a 16 x 16
    tile (2 elements a thread) ptxas spilled a 64-bit value for float64 on sm_80 (triton 3.6)."""
    return max(1, min(4, BLOCK_K * block_n // 256))


def gather_grid(n: int, c_out: int, out_size) -> tuple:
    """One forward program per (output pixel, block of output channels)."""
    h_out, w_out = out_size
    return (n * h_out * w_out, cdiv(c_out, _block_n(c_out)))


def grad_weight_grid(c_in: int, c_out: int, kernel_size) -> tuple:
    """One weight-gradient program per (weight row (c, ky, kx), block of output channels)."""
    return (c_in * kernel_size[0] * kernel_size[1], cdiv(c_out, _block_n(c_out)))


MASKED_BLOCK_K, MASKED_BLOCK_O = 16, 64
# 4 warps (8 tile elements a thread) spilled 16-28 bytes on sm_80 at the 128-register cap the
# compiler chose; 2 warps give each thread 16 elements and room for the tap loop's indices
MASKED_NUM_WARPS = 2


def masked_grad_grid(n: int, c_in: int, size) -> tuple:
    """One masked-gradient program per (input pixel, block of MASKED_BLOCK_K listed channels)."""
    return (n * size[0] * size[1], cdiv(c_in, MASKED_BLOCK_K))


def launch_grids(n: int, c_in: int, size, c_out: int, kernel_size, out_size) -> dict[str, tuple]:
    """The grid of every launch of forward(), grad_weight_t() and grad_input_masked() for spikes
    [n, c_in, *size], a weight [c_out, c_in, *kernel_size] and an output [n, c_out, *out_size]."""
    h, w = size
    return {
        "forward/_compact_rows_kernel": compact_grid(n * h * w),
        "forward/_conv_gather_kernel": gather_grid(n, c_out, out_size),
        "grad_weight_t/_compact_rows_kernel": compact_grid(n * c_in),
        "grad_weight_t/_conv_grad_weight_kernel": grad_weight_grid(c_in, c_out, kernel_size),
        "grad_input_masked/_compact_rows_kernel": compact_grid(n * h * w),
        "grad_input_masked/_conv_masked_grad_kernel": masked_grad_grid(n, c_in, size),
    }


def forward(spikes, weight_t, bias, kernel_size, stride, padding, dilation, out_size):
    """(conv2d(spikes, W) + bias [N, C_out, H_out, W_out], active channels per input pixel
    [N, H, W] int32). weight_t is [C_in * KH * KW, C_out]; padding is (top, left)."""
    n, c_in, h, w = spikes.shape
    c_out = weight_t.shape[1]
    h_out, w_out = out_size
    pixels = spikes.permute(0, 2, 3, 1).reshape(n * h * w, c_in)
    idx, val, cnt = compact_rows(pixels, _accumulator_dtype(weight_t.dtype))
    out = torch.empty((n, c_out, h_out, w_out), dtype=weight_t.dtype, device=weight_t.device)
    _conv_gather_kernel[gather_grid(n, c_out, out_size)](
        idx,
        val,
        cnt,
        weight_t.contiguous(),
        bias.contiguous() if bias is not None else weight_t,
        out,
        c_in,
        h,
        w,
        c_out,
        h_out,
        w_out,
        *kernel_size,
        *stride,
        *padding,
        *dilation,
        HAS_BIAS=bias is not None,
        BLOCK_K=BLOCK_K,
        BLOCK_N=_block_n(c_out),
        num_warps=_num_warps(_block_n(c_out)),
        **TOLERANT,
    )
    return out, cnt.view(n, h, w)


def grad_weight_t(grad_out, spikes, kernel_size, stride, padding, dilation):
    """The weight gradient as [C_in * KH * KW, C_out], over the active inputs only."""
    n, c_in, h, w = spikes.shape
    c_out, h_out, w_out = grad_out.shape[1:]
    idx, val, cnt = compact_rows(spikes.reshape(n * c_in, h * w), _accumulator_dtype(grad_out.dtype))
    g = grad_out.permute(0, 2, 3, 1).contiguous()  # NHWC: one output pixel's channels contiguous
    rows = c_in * kernel_size[0] * kernel_size[1]
    out = torch.empty((rows, c_out), dtype=grad_out.dtype, device=grad_out.device)
    _conv_grad_weight_kernel[grad_weight_grid(c_in, c_out, kernel_size)](
        idx,
        val,
        cnt,
        g,
        out,
        n,
        c_in,
        h,
        w,
        c_out,
        h_out,
        w_out,
        *kernel_size,
        *stride,
        *padding,
        *dilation,
        BLOCK_K=BLOCK_K,
        BLOCK_N=_block_n(c_out),
        num_warps=_num_warps(_block_n(c_out)),
        **TOLERANT,
    )
    return out


def grad_input_masked(grad_out, weight_t, mask, kernel_size, stride, padding, dilation):
    """The input gradient [N, C_in, H, W] at mask's nonzeros, zero elsewhere. weight_t is
    [C_in * KH * KW, C_out]; padding is (top, left)."""
    n, c_in, h, w = mask.shape
    c_out, h_out, w_out = grad_out.shape[1:]
    acc = _accumulator_dtype(grad_out.dtype)
    idx, _, cnt = compact_rows(mask.permute(0, 2, 3, 1).reshape(n * h * w, c_in), acc)
    g = grad_out.permute(0, 2, 3, 1).contiguous()  # NHWC: one output pixel's channels contiguous
    out = torch.zeros((n, c_in, h, w), dtype=grad_out.dtype, device=grad_out.device)
    _conv_masked_grad_kernel[masked_grad_grid(n, c_in, (h, w))](
        idx,
        cnt,
        g,
        weight_t.contiguous(),
        out,
        c_in,
        h,
        w,
        c_out,
        h_out,
        w_out,
        *kernel_size,
        *stride,
        *padding,
        *dilation,
        ACC_FP64=acc == torch.float64,
        BLOCK_K=MASKED_BLOCK_K,
        BLOCK_O=MASKED_BLOCK_O,
        num_warps=MASKED_NUM_WARPS,
        **TOLERANT,
    )
    return out
