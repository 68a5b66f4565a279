"""lif suite: the fused multi-step LIF against step-by-step loops.

Shapes: [T=100, B=32, N=1024] (the study's SHD hidden layer) and, in the full run,
[T=25, B=8, 128*34*34] (the N-MNIST conv layer). Forward, and forward+backward with a loss on
the spikes and the final membrane. Backends: the reference eager loop (plain torch, one graph per
step), snnTorch's Leaky stepped in a Python loop (when snntorch is installed), the sparsespike
kernel (cpp on CPU, triton on CUDA) and auto. Timed in interleaved rounds; medians.

Forward rows also give the achieved bandwidth (the bytes a fused kernel must move: read the
current, write the spikes and the final membrane) and its share of the device's copy bandwidth
(Tensor.copy_ of a buffer of the current's size, 2 x bytes / time), measured in the same run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..ops.lif import lif
from .timing import Progress, markdown_table, median_ms_interleaved

QUICK_SHAPES = ((100, 32, 1024),)
FULL_SHAPES = ((100, 32, 1024), (25, 8, 128 * 34 * 34))
MODES = ("forward", "forward+backward")


@dataclass
class Point:
    shape: str
    mode: str
    backend: str
    median_ms: float
    ratio_to_reference: float = float("nan")
    ratio_to_snntorch: float = float("nan")  # NaN without snntorch
    gb_per_s: float = float("nan")  # forward only
    share_of_copy: float = float("nan")


def _snntorch_step_loop():
    try:
        import snntorch
    except ImportError:
        return None
    neuron = snntorch.Leaky(beta=0.9, threshold=1.0, spike_grad=snntorch.surrogate.fast_sigmoid(slope=25))

    def run(current):
        mem = torch.zeros_like(current[0])
        spikes = []
        for t in range(current.shape[0]):
            spk, mem = neuron(current[t], mem)
            spikes.append(spk)
        return torch.stack(spikes), mem

    return run


def runners(current: torch.Tensor, mode: str, device: torch.device) -> dict:
    kernel = "cpp" if device.type == "cpu" else "triton"
    table = {
        "reference": lambda x: tuple(lif(x, 0.9, 1.0, backend="reference"))[:2],
        f"sparsespike-{kernel}": lambda x: tuple(lif(x, 0.9, 1.0, backend=kernel))[:2],
        "sparsespike-auto": lambda x: tuple(lif(x, 0.9, 1.0, backend="auto"))[:2],
    }
    snn = _snntorch_step_loop()
    if snn is not None:
        table["snntorch"] = snn

    def timed(fn):
        if mode == "forward":

            def run():
                with torch.no_grad():
                    fn(current)

            return run
        leaf = current.detach().requires_grad_()

        def run_backward():
            spikes, mem = fn(leaf)
            torch.autograd.grad(spikes.sum() + mem.sum(), leaf)

        return run_backward

    return {name: timed(fn) for name, fn in table.items()}


def run(device: torch.device, quick: bool, repeats: int | None = None, progress: bool = True) -> list[Point]:
    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    repeats = repeats or (3 if quick else 5)
    points = []
    bar = Progress(len(shapes) * len(MODES), progress)
    for shape in shapes:
        g = torch.Generator().manual_seed(0)
        current = (torch.randn(shape, generator=g) * 0.6 + 0.3).to(device)
        copy_gbps = _copy_gb_per_s(current, device, repeats)
        moved = 2 * current.numel() * current.element_size() + current[0].numel() * current.element_size()
        for mode in MODES:
            timed = median_ms_interleaved(runners(current, mode, device), device, repeats, warmup=1)
            ref, snn = timed["reference"], timed.get("snntorch", float("nan"))
            label = "x".join(map(str, shape))
            for name, ms in timed.items():
                gbps = moved / ms / 1e6 if mode == "forward" else float("nan")
                points.append(Point(label, mode, name, ms, ref / ms, snn / ms, gbps, gbps / copy_gbps))
            bar.step(f"lif {label} {mode}")
    return points


def _copy_gb_per_s(current: torch.Tensor, device: torch.device, repeats: int) -> float:
    """The device's copy bandwidth on a buffer of the current's size: read + write bytes / time."""
    target = torch.empty_like(current)
    ms = median_ms_interleaved({"copy": lambda: target.copy_(current)}, device, max(repeats, 5), warmup=2)["copy"]
    return 2 * current.numel() * current.element_size() / ms / 1e6


def table(points: list[Point]) -> str:
    headers = ["shape", "mode", "backend", "median ms", "x reference", "x snntorch", "GB/s", "share of copy"]
    rows = [
        [
            p.shape,
            p.mode,
            p.backend,
            p.median_ms,
            p.ratio_to_reference,
            p.ratio_to_snntorch,
            p.gb_per_s,
            p.share_of_copy,
        ]
        for p in points
    ]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
