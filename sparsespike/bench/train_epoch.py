"""train suite: one training epoch of the study's audio models, fused backends against the same
model on the reference backend (plain torch, multi-step).

The epoch is the training library's own (sparsespike.training.run_epoch: data loading, forward,
cross-entropy + SCL where the model has it, backward, clipping, AdamW step) over the embedded
audio set "randman" ([B, 100, 700] binary frames, 10 classes, batch 32). Both backends start from
the same weights (calibrated to ~3% hidden firing, as `python -m sparsespike.train` does) and see
the same batches; the epoch is timed end to end (wall clock, including data loading), after one
untimed warm-up step. Full: 640 samples, 20 steps (the reference backend takes about 1.4 s a step
on the 2-core development VM; SPARSESPIKE_BENCH_EPOCH_SAMPLES=0 times the whole 2,000-sample
split); quick: 64 samples.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import torch

from .timing import Progress, markdown_table, sync

MODELS = ("m4",)
BACKENDS = ("auto", "reference")
QUICK_SAMPLES = 64
MODEL_OPTIONS: dict = {}  # the study's sizes
FULL_SAMPLES = int(os.environ.get("SPARSESPIKE_BENCH_EPOCH_SAMPLES", "640")) or None
BATCH = 32


@dataclass
class Point:
    model: str
    backend: str
    samples: int
    epoch_s: float
    samples_per_s: float
    hidden_density: float
    speedup_vs_reference: float = float("nan")


def _epoch(model_name: str, backend: str, device: torch.device, limit, repeats: int) -> Point:
    from ..training import TrainConfig
    from ..training.distributed import Context
    from ..training.loop import Split, _batches, _calibrate, _loader, build, load_splits, run_epoch
    from ..training.optim import adamw

    config = TrainConfig(
        model=model_name,
        dataset="randman",
        backend=backend,
        batch_size=BATCH,
        limit_train=limit,
        progress=False,
        device=str(device),
        model_options=dict(MODEL_OPTIONS),
    )
    split: Split = load_splits(config)[0]
    torch.manual_seed(0)
    model = build(config, [split]).to(device)
    _calibrate(model, [split], config, device, log=lambda *_: None)  # as training does: ~3% hidden firing
    optimizer = adamw(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scl_weight = float(model.supcon_weight)
    ctx = Context()
    order = list(range(len(split.train)))
    warmup = _loader(split.train, _batches(order[:BATCH], BATCH, True), config, device)
    run_epoch(model, [(split.modality, warmup)], config, device, ctx, scl_weight, optimizer)
    best = None
    for _ in range(repeats):
        loader = _loader(split.train, _batches(order, BATCH, True), config, device)
        sync(device)
        start = time.perf_counter()
        metrics = run_epoch(model, [(split.modality, loader)], config, device, ctx, scl_weight, optimizer)
        sync(device)
        seconds = time.perf_counter() - start
        if best is None or seconds < best[0]:
            best = (seconds, metrics)
    seconds, metrics = best
    return Point(
        model_name, backend, metrics["samples"], seconds, metrics["samples"] / seconds, metrics["hidden_density"]
    )


def run(device: torch.device, quick: bool = False, repeats=None, progress: bool = True) -> list[Point]:
    repeats = repeats or 1  # an epoch is long enough to time once
    limit = QUICK_SAMPLES if quick else FULL_SAMPLES
    models = MODELS
    bar = Progress(len(models) * len(BACKENDS), enabled=progress)
    points = []
    for model_name in models:
        group = []
        for backend in BACKENDS:
            bar.step(f"train {model_name} {backend}")
            group.append(_epoch(model_name, backend, device, limit, repeats))
        reference = next(p for p in group if p.backend == "reference")
        for p in group:
            p.speedup_vs_reference = reference.epoch_s / p.epoch_s
        points += group
    return points


def table(points: list[Point]) -> str:
    headers = ["model", "backend", "samples", "epoch s", "samples/s", "hidden density", "x reference"]
    rows = [
        [p.model, p.backend, p.samples, p.epoch_s, p.samples_per_s, p.hidden_density, p.speedup_vs_reference]
        for p in points
    ]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
