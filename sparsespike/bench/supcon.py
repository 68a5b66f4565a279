"""supcon suite: the chunked supervised contrastive loss against the full-matrix one.

Features [B, D=512] (the study applies SCL to its 512-d time-averaged hidden spikes, no projection
head), 10 classes, temperature 0.07; B = 512, 3200 (T=100 x 32, the bench's row count elsewhere)
and 8192 (the full run). Forward+backward of supcon_loss_reference ("naive": the B x B matrix
under plain autograd) and supcon_loss ("chunked": row blocks of the auto chunk size, backward
recomputes the blocks). Timed in interleaved rounds; medians.

Memory, measured in one extra untimed forward+backward per point:
- largest tensor: the largest tensor any op produced, forward or backward (a TorchDispatchMode
  sees every op's outputs), in MiB;
- saved: the bytes autograd keeps for the backward (saved_tensors_hooks; storages counted once);
- peak: on CUDA, torch.cuda.max_memory_allocated above what was allocated before the call. CPU
  has no allocator statistics, so this is "-" there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..ops.supcon_loss import DEFAULT_TEMPERATURE, auto_chunk_size, supcon_loss, supcon_loss_reference
from .timing import Progress, markdown_table, median_ms_interleaved, sync

DIM = 512
CLASSES = 10
QUICK_BATCHES = (512, 3200)
FULL_BATCHES = (512, 3200, 8192)
MIB = float(1 << 20)


@dataclass
class Point:
    batch: int
    dim: int
    impl: str
    chunk: int
    median_ms: float
    ratio_to_naive: float
    largest_tensor_mib: float
    saved_mib: float
    peak_mib: float = float("nan")  # CUDA only


def _inputs(batch: int, device: torch.device):
    g = torch.Generator().manual_seed(batch)
    features = torch.randn(batch, DIM, generator=g).to(device)
    labels = torch.randint(0, CLASSES, (batch,), generator=g).to(device)
    return features, labels


def losses(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """A leaf copy of the features and, per implementation, a callable computing the loss on it."""
    leaf = features.detach().clone().requires_grad_()
    chunk = auto_chunk_size(features.shape[0])
    return leaf, {
        "naive": lambda: supcon_loss_reference(leaf, labels, DEFAULT_TEMPERATURE),
        "chunked": lambda: supcon_loss(leaf, labels, DEFAULT_TEMPERATURE, chunk_size=chunk),
    }


def _forward_backward(loss_fn, leaf):
    return lambda: torch.autograd.grad(loss_fn(), leaf)


def runners(features: torch.Tensor, labels: torch.Tensor) -> dict:
    """Forward+backward callables per implementation."""
    leaf, loss_fns = losses(features, labels)
    return {name: _forward_backward(fn, leaf) for name, fn in loss_fns.items()}


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def measure_memory(loss_fn, leaf: torch.Tensor) -> tuple[float, float, float]:
    """(largest tensor MiB, saved-for-backward MiB, CUDA peak MiB or NaN) of one forward+backward."""
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    with _LargestTensor() as mode:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn()
        torch.autograd.grad(loss, leaf)
    del loss
    peak = float("nan")
    if leaf.device.type == "cuda":
        sync(leaf.device)
        torch.cuda.reset_peak_memory_stats(leaf.device)
        base = torch.cuda.memory_allocated(leaf.device)
        torch.autograd.grad(loss_fn(), leaf)
        sync(leaf.device)
        peak = (torch.cuda.max_memory_allocated(leaf.device) - base) / MIB
    return mode.largest / MIB, sum(saved.values()) / MIB, peak


def run(device: torch.device, quick: bool, repeats: int | None = None, progress: bool = True) -> list[Point]:
    batches = QUICK_BATCHES if quick else FULL_BATCHES
    repeats = repeats or (3 if quick else 5)
    points = []
    bar = Progress(len(batches), progress)
    for batch in batches:
        features, labels = _inputs(batch, device)
        leaf, loss_fns = losses(features, labels)
        fns = {name: _forward_backward(fn, leaf) for name, fn in loss_fns.items()}
        timed = median_ms_interleaved(fns, device, repeats, warmup=1)
        chunk = auto_chunk_size(batch)
        for name, ms in timed.items():
            largest, saved, peak = measure_memory(loss_fns[name], leaf)
            points.append(
                Point(
                    batch, DIM, name, batch if name == "naive" else chunk, ms, timed["naive"] / ms, largest, saved, peak
                )
            )
        bar.step(f"supcon B={batch} D={DIM}")
    return points


def table(points: list[Point]) -> str:
    headers = ["B", "D", "impl", "chunk", "fwd+bwd ms", "x naive", "largest tensor MiB", "saved MiB", "peak MiB"]
    rows = [
        [p.batch, p.dim, p.impl, p.chunk, p.median_ms, p.ratio_to_naive, p.largest_tensor_mib, p.saved_mib, p.peak_mib]
        for p in points
    ]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
