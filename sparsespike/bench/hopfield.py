"""hopfield suite: modern Hopfield retrieval against torch's scaled_dot_product_attention.

3200 queries (T=100 x B=32) of width 512 against 256 stored patterns (values = patterns), one
update, beta = 1/sqrt(512)/0.1 (the study's M3). Queries: float (N(0, 1)) or binary spikes at 3%
density. Forward, and forward+backward with a random upstream gradient: gradients to the
patterns always, to the query only when it is float (a spike query is data, as in spike_linear's
suite). Backends: sdpa (torch's fused attention, the baseline), reference (matmul, softmax,
matmul), sparsespike cpp / auto (CPU) or triton (CUDA). Interleaved rounds; medians.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..ops.modern_hopfield import modern_hopfield
from .timing import Progress, markdown_table, median_ms_interleaved

QUERIES, PATTERNS, DIM = 3200, 256, 512
QUICK_QUERIES = 800
SPIKE_DENSITY = 0.03
MODES = ("forward", "forward+backward")
KINDS = ("float", "spikes")


@dataclass
class Point:
    queries: str
    mode: str
    backend: str
    median_ms: float
    ratio_to_sdpa: float = float("nan")


def _inputs(kind: str, n_queries: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    if kind == "float":
        query = torch.randn(n_queries, DIM, generator=g)
    else:
        query = (torch.rand(n_queries, DIM, generator=g) < SPIKE_DENSITY).float()
    patterns = torch.randn(PATTERNS, DIM, generator=g)
    grad = torch.randn(n_queries, DIM, generator=g)
    return query.to(device), patterns.to(device), grad.to(device)


def runners(kind: str, mode: str, n_queries: int, device: torch.device) -> dict:
    query, patterns, grad = _inputs(kind, n_queries, device)
    beta = 1.0 / math.sqrt(DIM) / 0.1
    kernel = "cpp" if device.type == "cpu" else "triton"

    def sdpa(q, p):
        return F.scaled_dot_product_attention(q[None], p[None], p[None], scale=beta)[0]

    table = {
        "sdpa": sdpa,
        "reference": lambda q, p: modern_hopfield(q, p, beta, backend="reference"),
        f"sparsespike-{kernel}": lambda q, p: modern_hopfield(q, p, beta, backend=kernel),
        "sparsespike-auto": lambda q, p: modern_hopfield(q, p, beta, backend="auto"),
    }

    def timed(fn):
        if mode == "forward":

            def run():
                with torch.no_grad():
                    fn(query, patterns)

            return run
        q = query.detach().requires_grad_(kind == "float")
        p = patterns.detach().requires_grad_()
        wrt = (q, p) if kind == "float" else (p,)

        def run_backward():
            torch.autograd.grad(fn(q, p), wrt, grad)

        return run_backward

    return {name: timed(fn) for name, fn in table.items()}


def run(device: torch.device, quick: bool, repeats: int | None = None, progress: bool = True) -> list[Point]:
    n_queries = QUICK_QUERIES if quick else QUERIES
    repeats = repeats or (3 if quick else 9)
    points = []
    bar = Progress(len(KINDS) * len(MODES), progress)
    for kind in KINDS:
        label = kind if kind == "float" else f"spikes {SPIKE_DENSITY:.0%}"
        for mode in MODES:
            timed = median_ms_interleaved(runners(kind, mode, n_queries, device), device, repeats, warmup=1)
            base = timed["sdpa"]
            points += [Point(label, mode, name, ms, base / ms) for name, ms in timed.items()]
            bar.step(f"hopfield {label} {mode}")
    return points


def table(points: list[Point]) -> str:
    headers = ["queries", "mode", "backend", "median ms", "x sdpa"]
    return markdown_table(headers, [[p.queries, p.mode, p.backend, p.median_ms, p.ratio_to_sdpa] for p in points])


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
