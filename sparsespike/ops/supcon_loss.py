"""supcon_loss: the supervised contrastive loss (Khosla et al., NeurIPS 2020), in O(B x chunk) memory.

For L2-normalised features z_i, s_ij = z_i . z_j / temperature and positives
P(i) = {p != i : y_p == y_i}, the loss of anchor i is Khosla's L_out

    L_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip) / sum_{a != i} exp(s_ia) )
        = logsumexp_{a != i}(s_ia) - mean_{p in P(i)} s_ip

Anchors without positives (a class seen once in the batch) are excluded: they contribute
nothing and "mean" averages over the anchors that have positives. A batch where no anchor has
a positive gives a loss of 0 whose gradient is 0 (no NaN).

:func:`supcon_loss` never forms the B x B similarity matrix: its autograd Function walks the
anchors in row chunks of ``chunk_size``, keeping one [chunk, B] block (and a few of its
element-wise companions) alive at a time, and saves only the features and two numbers per
anchor (the log-sum-exp and the positive count) for the backward, which recomputes each block.
:func:`supcon_loss_reference` is the plain full-matrix version (the oracle; O(B^2) memory).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._validate import check_finite, require_nonempty, require_same_device, require_tensor

DEFAULT_TEMPERATURE = 0.07  # the study's code (its text says 0.1)
REDUCTIONS = ("mean", "sum", "none")
# Auto chunk: rows per block so that one [chunk, B] block holds about 4 Mi elements (16 MiB fp32).
AUTO_CHUNK_ELEMENTS = 1 << 22
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def auto_chunk_size(n_anchors: int) -> int:
    """Anchor rows per block when ``chunk_size`` is None."""
    return max(1, min(n_anchors, AUTO_CHUNK_ELEMENTS // max(n_anchors, 1)))


# ----------------------------------------------------------------------------- validation


def check_temperature(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_chunk_size(chunk_size) -> Optional[int]:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be an int or None, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return int(chunk_size)


def check_reduction(reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _prepare(features, labels, normalize: bool):
    """Validate; flatten views into anchors; L2-normalise. Returns (z [N, D], y [N], shape of "none")."""
    require_tensor(features, "features")
    if features.dim() not in (2, 3):
        raise ValueError(f"features must be [batch, dim] or [batch, views, dim], got shape {tuple(features.shape)}")
    if not features.dtype.is_floating_point:
        raise TypeError(f"features must be a floating-point tensor, got dtype {features.dtype}")
    require_nonempty(features, "features")
    batch = features.shape[0]
    if labels is None:
        if features.dim() == 2:
            raise ValueError(
                "labels is required for [batch, dim] features (None means SimCLR: needs "
                "[batch, views, dim] features, positives = the other views of a sample)"
            )
        labels = torch.arange(batch, device=features.device)
    require_tensor(labels, "labels")
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D [batch], got shape {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise TypeError(f"labels must be an integer tensor (class indices), got dtype {labels.dtype}")
    if labels.shape[0] != batch:
        raise ValueError(f"labels has {labels.shape[0]} entries but features has batch size {batch}")
    require_same_device(features, "features", labels, "labels")
    check_finite(features, "features")

    if features.dim() == 3:  # Khosla's multi-view input: every view is an anchor with the sample's label
        views = features.shape[1]
        out_shape = (batch, views)
        features = features.reshape(batch * views, features.shape[2])
        labels = labels.repeat_interleave(views)
    else:
        out_shape = (batch,)
    if features.dtype in _LOW_PRECISION:  # exp / logsumexp in float32
        features = features.float()
    z = F.normalize(features, dim=1) if normalize else features
    return z, labels, out_shape


def _reduce(per_anchor, valid, scale: float, reduction: str, out_shape):
    if scale != 1.0:
        per_anchor = per_anchor * scale
    if reduction == "none":
        return per_anchor.reshape(out_shape)
    total = per_anchor.sum()
    if reduction == "sum":
        return total
    return total / valid.sum().clamp(min=1).to(total.dtype)


# ----------------------------------------------------------------------------- chunked kernel


def _block_logits(z, rows, start: int, temperature: float):
    """s[i, j] = z_{start+i} . z_j / temperature for one row block, the self-pair set to -inf."""
    s = torch.mm(rows, z.t()).div_(temperature)
    s.diagonal(offset=start).fill_(float("-inf"))
    return s


def _block_positives(labels, start: int, end: int):
    pos = labels[start:end, None] == labels[None, :]
    pos.diagonal(offset=start).fill_(False)
    return pos


class _SupConChunked(torch.autograd.Function):
    """Per-anchor losses [N] (0 where an anchor has no positive) and the mask of anchors with
    positives. Saves z, labels, the per-anchor log-sum-exp and positive counts; the backward
    recomputes each [chunk, N] block of similarities."""

    @staticmethod
    def forward(ctx, z, labels, temperature: float, chunk: int):
        n = z.shape[0]
        with torch.autocast(device_type=z.device.type, enabled=False):
            per_anchor = torch.empty(n, dtype=z.dtype, device=z.device)
            lse = torch.empty(n, dtype=z.dtype, device=z.device)
            npos = torch.empty(n, dtype=torch.int64, device=z.device)
            for start in range(0, n, chunk):
                end = min(start + chunk, n)
                s = _block_logits(z, z[start:end], start, temperature)
                pos = _block_positives(labels, start, end)
                count = pos.sum(1)
                block_lse = torch.logsumexp(s, dim=1)  # subtracts the row max: stable
                pos_mean = torch.where(pos, s, 0).sum(1) / count.clamp(min=1)
                per_anchor[start:end] = torch.where(count > 0, block_lse - pos_mean, 0)
                lse[start:end] = block_lse
                npos[start:end] = count
        valid = npos > 0
        ctx.save_for_backward(z, labels, lse, npos)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(valid)
        return per_anchor, valid

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_per_anchor, _grad_valid):
        z, labels, lse, npos = ctx.saved_tensors
        temperature, chunk = ctx.temperature, ctx.chunk
        n = z.shape[0]
        valid = npos > 0
        # dL_i/ds_ij = g_i (softmax_{a != i}(s_i)_j - [j in P(i)] / |P(i)|) for anchors with positives
        weight = torch.where(valid, grad_per_anchor.to(z.dtype), 0)
        inv_npos = 1.0 / npos.clamp(min=1).to(z.dtype)
        grad_z = torch.zeros_like(z)
        with torch.autocast(device_type=z.device.type, enabled=False):
            for start in range(0, n, chunk):
                end = min(start + chunk, n)
                rows = z[start:end]
                g = _block_logits(z, rows, start, temperature)
                g.sub_(lse[start:end, None]).exp_()  # softmax over a != i (the -inf self pair -> 0)
                g.masked_fill_(~valid[start:end, None], 0)  # rows without positives (NaN when N == 1)
                g.sub_(_block_positives(labels, start, end).to(z.dtype) * inv_npos[start:end, None])
                g.mul_(weight[start:end, None])
                # s = z z^T / t: dz_i += sum_j G_ij z_j / t (row block) and dz_j += sum_i G_ij z_i / t
                grad_z[start:end].addmm_(g, z, alpha=1.0 / temperature)
                grad_z.addmm_(g.t(), rows, alpha=1.0 / temperature)
        return grad_z, None, None, None


def _per_anchor_full(z, labels, temperature: float):
    """Full-matrix per-anchor losses, differentiable by autograd (the reference)."""
    n = z.shape[0]
    s = z @ z.t() / temperature
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    pos = (labels[:, None] == labels[None, :]) & ~self_pair
    npos = pos.sum(1)
    # the self pair is left out of the denominator; finfo.min rather than -inf keeps a lone
    # anchor (N == 1, empty denominator) free of NaN in the backward
    logits = s.masked_fill(self_pair, torch.finfo(s.dtype).min)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    valid = npos > 0
    per_anchor = -torch.where(pos, log_prob, 0).sum(1) / npos.clamp(min=1)
    return torch.where(valid, per_anchor, 0), valid


# ----------------------------------------------------------------------------- public API


def supcon_loss(
    features: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    temperature: float = DEFAULT_TEMPERATURE,
    *,
    chunk_size: Optional[int] = None,
    normalize: bool = True,
    reduction: str = "mean",
    base_temperature: Optional[float] = None,
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out), chunked over anchors.

    Args:
        features: [B, D], or [B, V, D] with V views per sample (every view is an anchor carrying
            its sample's label, as in Khosla's reference code). Floating point; float16/bfloat16
            are computed (and returned) in float32.
        labels: [B] integer class indices. None with [B, V, D] features is SimCLR (each sample
            its own class: the positives are the other views).
        temperature: tau > 0 (default 0.07, the study's code).
        chunk_size: anchors per block of the similarity matrix; memory is O(B x chunk_size) in the
            forward and the backward. None: about 4 Mi elements per block (no chunking up to 2048 anchors, B x V).
        normalize: L2-normalise the features first (True; the loss is defined on the unit sphere).
        reduction: "mean" over anchors that have a positive (0 when none has), "sum", or "none"
            (per-anchor losses of shape [B] or [B, V], 0 for anchors without positives).
        base_temperature: if given, the loss is scaled by temperature / base_temperature like
            Khosla's reference code (which defaults both to 0.07, a factor of 1).

    Deterministic: fixed block order, no atomics. Double backward is not supported.
    """
    temperature = check_temperature(temperature, "temperature")
    scale = 1.0 if base_temperature is None else temperature / check_temperature(base_temperature, "base_temperature")
    chunk = check_chunk_size(chunk_size)
    reduction = check_reduction(reduction)
    z, y, out_shape = _prepare(features, labels, normalize)
    chunk = auto_chunk_size(z.shape[0]) if chunk is None else min(chunk, z.shape[0])
    per_anchor, valid = _SupConChunked.apply(z, y, temperature, chunk)
    return _reduce(per_anchor, valid, scale, reduction, out_shape)


def supcon_loss_reference(
    features: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    temperature: float = DEFAULT_TEMPERATURE,
    *,
    normalize: bool = True,
    reduction: str = "mean",
    base_temperature: Optional[float] = None,
) -> torch.Tensor:
    """:func:`supcon_loss` on the full B x B similarity matrix with plain autograd (O(B^2) memory)."""
    temperature = check_temperature(temperature, "temperature")
    scale = 1.0 if base_temperature is None else temperature / check_temperature(base_temperature, "base_temperature")
    reduction = check_reduction(reduction)
    z, y, out_shape = _prepare(features, labels, normalize)
    per_anchor, valid = _per_anchor_full(z, y, temperature)
    return _reduce(per_anchor, valid, scale, reduction, out_shape)
