"""batch suite: M1 audio inference at 3% activation density across batch sizes, and streaming
(batch 1, one time step per call, membranes carried between calls), on the fused backends (auto),
the reference backend and the step-by-step eager baseline, with the same calibrated weights.

Sequence rows time one call over the whole [B, 100, 700] input; streaming rows time the 100
calls of one sample (latency per step = ms / 100). "auto / best" is auto's time over the fastest
contender's at that point (1.00: auto is the best).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .models import _input, _spiking_densities
from .timing import Progress, markdown_table, median_ms_interleaved

BACKENDS = ("auto", "reference", "eager")
DENSITY = 0.03
BATCHES = (1, 8, 32, 128)
QUICK_BATCHES = (1, 4)
MODEL_OPTIONS: dict = {}  # the study's audio M1
QUICK_MODEL_OPTIONS = {"hidden_sizes": (128, 128), "feature_size": 64}
CALIBRATION_BATCH = 32


@dataclass
class Point:
    model: str
    modality: str
    mode: str  # "sequence" or "streaming"
    batch: int
    backend: str
    ms: float
    ms_per_step: float
    samples_per_s: float
    hidden_density: float
    auto_vs_best: float = float("nan")


def _contenders(options: dict, device: torch.device):
    from ..models import build_model
    from ..models.calibration import calibrate_firing
    from .eager import EagerM1
    from .streaming import FusedStreamM1

    torch.manual_seed(0)
    fused = build_model("m1", "audio", backend="auto", **options).to(device).eval()
    generator = torch.Generator().manual_seed(0)
    x = _input("audio", fused, CALIBRATION_BATCH, DENSITY, generator).to(device)
    calibrate_firing(fused, lambda: fused(x), hidden_rate=DENSITY)
    rates = _spiking_densities(fused, lambda: fused(x))
    hidden = [v for k, v in rates.items() if not k.startswith("head.")]
    reference = build_model("m1", "audio", backend="reference", **options).to(device).eval()
    reference.load_state_dict(fused.state_dict())
    eager = EagerM1(fused)
    sequence = {
        "auto": lambda x: fused(x).logits,
        "reference": lambda x: reference(x).logits,
        "eager": lambda x: eager(x)[0],
    }
    streaming = {"auto": FusedStreamM1(fused), "reference": FusedStreamM1(reference), "eager": eager}
    return fused, sequence, streaming, sum(hidden) / len(hidden), generator


def _stream(stepper, x: torch.Tensor):
    state, counts = None, 0
    for t in range(x.shape[1]):
        out, *rest = stepper.step(x[:, t], state)
        state = rest[-1]
        counts = counts + out
    return counts


def run(device: torch.device, quick: bool = False, repeats=None, progress: bool = True) -> list[Point]:
    repeats = repeats or (2 if quick else 5)
    batches = QUICK_BATCHES if quick else BATCHES
    options = QUICK_MODEL_OPTIONS if quick else MODEL_OPTIONS
    bar = Progress(len(batches) + 1, enabled=progress)
    fused, sequence, streaming, density, generator = _contenders(options, device)
    points = []
    with torch.no_grad():
        for batch in batches:
            bar.step(f"m1 audio sequence batch {batch}")
            x = _input_like(fused, batch, generator, device)
            ms = median_ms_interleaved({b: (lambda f=sequence[b]: f(x)) for b in BACKENDS}, device, repeats, warmup=1)
            points += _group("sequence", batch, ms, x.shape[1], density)
        bar.step("m1 audio streaming batch 1")
        x = _input_like(fused, 1, generator, device)
        ms = median_ms_interleaved(
            {b: (lambda s=streaming[b]: _stream(s, x)) for b in BACKENDS}, device, repeats, warmup=1
        )
        points += _group("streaming", 1, ms, x.shape[1], density)
    return points


def _input_like(model, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return _input("audio", model, batch, DENSITY, generator).to(device)


def _group(mode: str, batch: int, ms: dict, steps: int, density: float) -> list[Point]:
    best = min(ms.values())
    return [
        Point("m1", "audio", mode, batch, b, ms[b], ms[b] / steps, batch / ms[b] * 1e3, density, ms["auto"] / best)
        for b in BACKENDS
    ]


def table(points: list[Point]) -> str:
    headers = ["model", "mode", "batch", "backend", "ms", "ms / step", "samples/s", "hidden density", "auto / best"]
    rows = [
        [
            f"{p.model} {p.modality}",
            p.mode,
            p.batch,
            p.backend,
            p.ms,
            p.ms_per_step,
            p.samples_per_s,
            p.hidden_density,
            p.auto_vs_best,
        ]
        for p in points
    ]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
