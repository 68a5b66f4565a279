"""spike_linear suite: event-driven propagation against dense matmul and embedding_bag.

Rows = T*B (3200 = 100 steps x 32 samples, the study's SHD batch; 32 = one step of a batch),
shapes of the study's audio layers, input densities from 50% down to 0.5%. Each point times
forward, and forward+backward with the spikes not requiring grad (a first layer, or spikes from
a detached encoder), for: dense torch matmul (F.linear), torch embedding_bag over the
compacted spikes (nonzero() + bincount + embedding_bag, a pure-torch event-driven baseline), the
sparsespike kernel forced (cpp on CPU, triton on CUDA) and sparsespike auto. All in one run,
timed in rounds of one call each (so drift of the machine's speed hits all alike), as medians.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..ops.spike_linear import spike_linear
from .timing import Progress, markdown_table, median_ms_interleaved

FULL_DENSITIES = (0.5, 0.1, 0.05, 0.03, 0.015, 0.01, 0.005)
QUICK_DENSITIES = (0.5, 0.1, 0.03, 0.01)
SHAPES = ((700, 1024), (1024, 1024))
ROWS = (3200, 32)
MODES = ("forward", "forward+backward")
CALIBRATION_DENSITIES = (0.6, 0.45, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05, 0.03)
CALIBRATION_SHAPE = (3200, 1024, 1024)  # rows, in, out


@dataclass
class Point:
    rows: int
    in_features: int
    out_features: int
    density: float
    mode: str
    backend: str
    median_ms: float
    ratio_to_dense: float = float("nan")


def _kernel_backend(device: torch.device) -> str:
    return "cpp" if device.type == "cpu" else "triton"


def _inputs(rows, in_f, out_f, density, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    spikes = (torch.rand(rows, in_f, generator=g) < density).float().to(device)
    weight = (torch.randn(out_f, in_f, generator=g) / math.sqrt(in_f)).to(device).requires_grad_()
    bias = torch.zeros(out_f, device=device).requires_grad_()
    grad_out = torch.randn(rows, out_f, generator=g).to(device)
    return spikes, weight, bias, grad_out


def _embedding_bag_forward(spikes, weight_t, bias):
    rows = spikes.shape[0]
    nz = spikes.nonzero()
    counts = torch.bincount(nz[:, 0], minlength=rows)
    offsets = counts.cumsum(0) - counts
    values = spikes[nz[:, 0], nz[:, 1]]
    out = F.embedding_bag(nz[:, 1], weight_t, offsets, mode="sum", per_sample_weights=values)
    return out + bias


def runners(spikes, weight, bias, grad_out, mode, device):
    """name -> zero-argument callable doing one forward (or forward+backward)."""
    weight_t = weight.detach().t().contiguous().requires_grad_()  # embedding_bag's own input-major leaf
    kernel = _kernel_backend(device)

    table = {
        "dense": (lambda: F.linear(spikes, weight, bias), (weight, bias)),
        "embedding_bag": (lambda: _embedding_bag_forward(spikes, weight_t, bias), (weight_t, bias)),
        f"sparsespike-{kernel}": (lambda: spike_linear(spikes, weight, bias, backend=kernel), (weight, bias)),
        "sparsespike-auto": (lambda: spike_linear(spikes, weight, bias, backend="auto"), (weight, bias)),
    }
    if mode == "forward":
        return {name: _without_grad(fn) for name, (fn, _) in table.items()}
    return {name: _with_backward(fn, params, grad_out) for name, (fn, params) in table.items()}


def _without_grad(fn):
    def run():
        with torch.no_grad():
            return fn()

    return run


def _with_backward(fn, params, grad_out):
    # autograd.grad, not backward(): no accumulation into .grad inside the timed region
    return lambda: torch.autograd.grad(fn(), params, grad_out)


def run(device: torch.device, quick: bool, repeats: int | None = None, progress: bool = True) -> list[Point]:
    densities = QUICK_DENSITIES if quick else FULL_DENSITIES
    repeats = repeats or (3 if quick else 9)
    points: list[Point] = []
    total = len(ROWS) * len(SHAPES) * len(densities) * len(MODES)
    bar = Progress(total, progress)
    for rows in ROWS:
        for in_f, out_f in SHAPES:
            for density in densities:
                spikes, weight, bias, grad_out = _inputs(rows, in_f, out_f, density, device)
                for mode in MODES:
                    fns = runners(spikes, weight, bias, grad_out, mode, device)
                    timed = median_ms_interleaved(fns, device, repeats)
                    dense = timed["dense"]
                    for name, ms in timed.items():
                        points.append(Point(rows, in_f, out_f, density, mode, name, ms, dense / ms))
                    bar.step(f"spike_linear rows={rows} {in_f}->{out_f} density={density} {mode}")
    return points


def table(points: list[Point]) -> str:
    """One row per (rows, shape, density, mode): each backend's median ms, ratio to dense, and
    auto's time relative to the best of dense and the kernel."""
    backends = list(dict.fromkeys(p.backend for p in points))
    groups: dict[tuple, dict[str, Point]] = {}
    for p in points:
        groups.setdefault((p.rows, p.in_features, p.out_features, p.mode, p.density), {})[p.backend] = p
    headers = ["rows", "shape", "mode", "density"]
    for b in backends:
        headers += [f"{b} ms", f"{b} x"] if b != "dense" else ["dense ms"]
    headers.append("auto/best")
    rows = []
    kernel = next(b for b in backends if b.startswith("sparsespike-") and b != "sparsespike-auto")
    for (r, i, o, mode, d), by in groups.items():
        row = [r, f"{i}->{o}", mode, d]
        for b in backends:
            row += [by[b].median_ms, by[b].ratio_to_dense] if b != "dense" else [by[b].median_ms]
        best = min(by["dense"].median_ms, by[kernel].median_ms)
        row.append(by["sparsespike-auto"].median_ms / best)
        rows.append(row)
    return markdown_table(headers, rows)


def calibrate(device: torch.device, repeats: int = 5, progress: bool = True) -> dict:
    """Crossover densities for sparsespike.dispatch, measured at CALIBRATION_SHAPE:
    the highest density where the event-driven kernel is still faster than dense, forward and
    for the weight gradient (log-interpolated between the swept densities)."""
    kernel = _kernel_backend(device)
    fwd_ratio, bwd_ratio = [], []
    bar = Progress(len(CALIBRATION_DENSITIES), progress)
    for density in CALIBRATION_DENSITIES:
        spikes, weight, bias, grad_out = _inputs(*CALIBRATION_SHAPE, density, device)
        nnz = torch.count_nonzero(spikes)
        grad_op = torch.ops.sparsespike.spike_linear_grad_weight
        with torch.no_grad():
            t = median_ms_interleaved(
                {
                    "dense": lambda: F.linear(spikes, weight, bias),
                    "event": lambda: spike_linear(spikes, weight, bias, backend=kernel),
                    "dense_bwd": lambda: grad_op(grad_out, spikes, nnz, "reference"),
                    "event_bwd": lambda: grad_op(grad_out, spikes, nnz, kernel),
                },
                device,
                repeats,
            )
        dense, event, dense_bwd, event_bwd = t["dense"], t["event"], t["dense_bwd"], t["event_bwd"]
        fwd_ratio.append(dense / event)
        bwd_ratio.append(dense_bwd / event_bwd)
        bar.step(f"calibrate density={density}: forward x{dense / event:.2f}, weight grad x{dense_bwd / event_bwd:.2f}")
    return {
        "forward_density": _crossing(CALIBRATION_DENSITIES, fwd_ratio),
        "backward_density": _crossing(CALIBRATION_DENSITIES, bwd_ratio),
        "measured": [
            {"density": d, "forward_speedup": f, "weight_grad_speedup": b}
            for d, f, b in zip(CALIBRATION_DENSITIES, fwd_ratio, bwd_ratio)
        ],
    }


def _crossing(densities, speedups) -> float:
    """Highest density with speedup >= 1 (densities descending), interpolated in log-log."""
    pairs = list(zip(densities, speedups))
    if pairs[0][1] >= 1:
        return pairs[0][0]
    for (d_hi, s_hi), (d_lo, s_lo) in zip(pairs, pairs[1:]):
        if s_lo >= 1 > s_hi:
            t = math.log(s_lo) / (math.log(s_lo) - math.log(s_hi))
            return math.exp(math.log(d_lo) + t * (math.log(d_hi) - math.log(d_lo)))
    return 0.0


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
