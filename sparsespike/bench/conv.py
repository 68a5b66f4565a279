"""conv suite: the event-driven spike_conv2d against torch's conv2d (oneDNN on CPU, cuDNN on GPU).

The study's N-MNIST layers: Conv2d(2, 64, 3) on event frames and Conv2d(64, 128, 3) on spikes,
34x34, padding 1, N = 200 images (T=25 steps x B=8), fp32, input densities 10% to 1%. Modes:
forward; forward+backward with the spikes not requiring grad (gradients of weight and bias
only: a first layer, or what the event-driven kernels change); and, in the full run,
forward+backward+input, where the spikes require grad too and both sides add the same dense
transposed convolution. Backends: torch's F.conv2d, the sparsespike kernel forced (cpp on CPU,
triton on CUDA) and sparsespike auto. Timed in interleaved rounds; medians.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..ops.spike_conv2d import spike_conv2d
from .timing import Progress, markdown_table, median_ms_interleaved

SHAPES = ((2, 64), (64, 128))  # (C_in, C_out)
SIZE = 34
KERNEL = 3
PADDING = 1
IMAGES = 200  # T=25 x B=8
FULL_DENSITIES = (0.1, 0.05, 0.03, 0.01)
QUICK_DENSITIES = (0.1, 0.03)
FULL_MODES = ("forward", "forward+backward", "forward+backward+input")
QUICK_MODES = ("forward", "forward+backward")


@dataclass
class Point:
    c_in: int
    c_out: int
    density: float
    mode: str
    backend: str
    median_ms: float
    ratio_to_torch: float = float("nan")


def _inputs(c_in, c_out, density, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    spikes = (torch.rand(IMAGES, c_in, SIZE, SIZE, generator=g) < density).float().to(device)
    bound = 1 / math.sqrt(c_in * KERNEL * KERNEL)
    weight = ((torch.rand(c_out, c_in, KERNEL, KERNEL, generator=g) * 2 - 1) * bound).to(device).requires_grad_()
    bias = ((torch.rand(c_out, generator=g) * 2 - 1) * bound).to(device).requires_grad_()
    out = SIZE + 2 * PADDING - KERNEL + 1
    grad_out = torch.randn(IMAGES, c_out, out, out, generator=g).to(device)
    return spikes, weight, bias, grad_out


def runners(spikes, weight, bias, grad_out, mode, device):
    """name -> zero-argument callable doing one forward (or forward+backward)."""
    kernel = "cpp" if device.type == "cpu" else "triton"
    table = {
        "torch": lambda x: F.conv2d(x, weight, bias, 1, PADDING),
        f"sparsespike-{kernel}": lambda x: spike_conv2d(x, weight, bias, 1, PADDING, backend=kernel),
        "sparsespike-auto": lambda x: spike_conv2d(x, weight, bias, 1, PADDING, backend="auto"),
    }
    if mode == "forward":

        def forward_only(fn):
            def run():
                with torch.no_grad():
                    return fn(spikes)

            return run

        return {name: forward_only(fn) for name, fn in table.items()}
    leaf = spikes.detach().requires_grad_(mode == "forward+backward+input")
    params = (leaf, weight, bias) if leaf.requires_grad else (weight, bias)
    # autograd.grad, not backward(): no accumulation into .grad inside the timed region
    return {name: (lambda fn=fn: torch.autograd.grad(fn(leaf), params, grad_out)) for name, fn in table.items()}


def run(device: torch.device, quick: bool, repeats: int | None = None, progress: bool = True) -> list[Point]:
    densities = QUICK_DENSITIES if quick else FULL_DENSITIES
    modes = QUICK_MODES if quick else FULL_MODES
    repeats = repeats or (3 if quick else 7)
    points: list[Point] = []
    bar = Progress(len(SHAPES) * len(densities) * len(modes), progress)
    for c_in, c_out in SHAPES:
        for density in densities:
            spikes, weight, bias, grad_out = _inputs(c_in, c_out, density, device)
            for mode in modes:
                timed = median_ms_interleaved(
                    runners(spikes, weight, bias, grad_out, mode, device), device, repeats, warmup=1
                )
                ref = timed["torch"]
                points += [Point(c_in, c_out, density, mode, name, ms, ref / ms) for name, ms in timed.items()]
                bar.step(f"conv {c_in}->{c_out} density={density} {mode}")
    return points


def table(points: list[Point]) -> str:
    """One row per (shape, density, mode): each backend's median ms and its speed-up over torch."""
    backends = list(dict.fromkeys(p.backend for p in points))
    groups: dict[tuple, dict[str, Point]] = {}
    for p in points:
        groups.setdefault((p.c_in, p.c_out, p.mode, p.density), {})[p.backend] = p
    headers = ["shape", "mode", "density"]
    for b in backends:
        headers += ["torch ms"] if b == "torch" else [f"{b} ms", f"{b} x"]
    rows = []
    for (c_in, c_out, mode, density), by in groups.items():
        row = [f"{c_in}->{c_out} {SIZE}x{SIZE} N={IMAGES}", mode, density]
        for b in backends:
            row += [by[b].median_ms] if b == "torch" else [by[b].median_ms, by[b].ratio_to_torch]
        rows.append(row)
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
