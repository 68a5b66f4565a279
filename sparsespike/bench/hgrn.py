"""hgrn suite: the fused HGRN scan against an eager torch loop over time.

Shape [T=100, B=32, D=512] (quick: [50, 8, 512]); forward, and forward+backward (gradients of
x and g from a fixed random gradient of every state). Backends:
- eager-loop (the baseline): the forget gates exp(g) in one op, then one torch.addcmul per time
  step in a Python loop over x.unbind(0), stacked; backward by autograd;
- eager-loop-indexed: the same loop written with x[t] and f[t], as it is usually written: its
  backward builds a full [T, ...] zero gradient per step and per indexed tensor (O(T^2) memory
  traffic), so it is many times slower than eager-loop at T = 100;
- reference: sparsespike's reference loop (exp, multiply and add per step);
- the sparsespike kernel (cpp on CPU, triton on CUDA) and auto.
Timed in interleaved rounds; medians; "x eager-loop" is the baseline's time over each one's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..ops.hgrn_scan import hgrn_scan
from .timing import Progress, markdown_table, median_ms_interleaved

QUICK_SHAPES = ((50, 8, 512),)
FULL_SHAPES = ((100, 32, 512),)
MODES = ("forward", "forward+backward")


@dataclass
class Point:
    shape: str
    mode: str
    backend: str
    median_ms: float
    ratio_to_eager_loop: float = float("nan")


def eager_loop(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """h_t = exp(g_t) h_{t-1} + x_t, one op per step. The steps are taken with unbind: indexing
    x[t] would make autograd build a full-size zero gradient per step (O(T^2) backward)."""
    h = torch.zeros_like(x[0])
    states = []
    for x_t, f_t in zip(x.unbind(0), g.exp().unbind(0)):
        h = torch.addcmul(x_t, f_t, h)
        states.append(h)
    return torch.stack(states)


def eager_loop_indexed(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """eager_loop with x[t], f[t] indexing."""
    forget = g.exp()
    h = torch.zeros_like(x[0])
    states = []
    for t in range(x.shape[0]):
        h = torch.addcmul(x[t], forget[t], h)
        states.append(h)
    return torch.stack(states)


def runners(x: torch.Tensor, g: torch.Tensor, mode: str, device: torch.device) -> dict:
    kernel = "cpp" if device.type == "cpu" else "triton"
    table = {
        "eager-loop": eager_loop,
        "eager-loop-indexed": eager_loop_indexed,
        "reference": lambda x, g: hgrn_scan(x, g, backend="reference").h,
        f"sparsespike-{kernel}": lambda x, g: hgrn_scan(x, g, backend=kernel).h,
        "sparsespike-auto": lambda x, g: hgrn_scan(x, g, backend="auto").h,
    }

    def timed(fn):
        if mode == "forward":

            def run():
                with torch.no_grad():
                    fn(x, g)

            return run
        leaf_x, leaf_g = x.detach().requires_grad_(), g.detach().requires_grad_()
        grad_h = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device)

        def run_backward():
            torch.autograd.grad(fn(leaf_x, leaf_g), (leaf_x, leaf_g), grad_h)

        return run_backward

    return {name: timed(fn) for name, fn in table.items()}


def run(device: torch.device, quick: bool, repeats: int | None = None, progress: bool = True) -> list[Point]:
    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    repeats = repeats or (3 if quick else 9)
    points = []
    bar = Progress(len(shapes) * len(MODES), progress)
    for shape in shapes:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen).to(device)
        g = torch.nn.functional.logsigmoid(torch.randn(shape, generator=gen) + 2).to(device)  # gates ~0.85
        for mode in MODES:
            timed = median_ms_interleaved(runners(x, g, mode, device), device, repeats, warmup=1)
            base = timed["eager-loop"]
            label = "x".join(map(str, shape))
            points += [Point(label, mode, name, ms, base / ms) for name, ms in timed.items()]
            bar.step(f"hgrn {label} {mode}")
    return points


def table(points: list[Point]) -> str:
    headers = ["shape", "mode", "backend", "median ms", "x eager-loop"]
    rows = [[p.shape, p.mode, p.backend, p.median_ms, p.ratio_to_eager_loop] for p in points]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
