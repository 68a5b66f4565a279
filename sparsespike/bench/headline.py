"""headline suite: the study's M1, audio and visual, at its activity (3% input and target hidden
rate): the fused model (backend auto) against the reference backend and the step-by-step eager
baseline, one inference call and one training step, with SynOps and peak memory.

These are the models suite's M1 cases at one density (same sizes, batches, calibration and
timing: see sparsespike.bench.models), with more timed rounds, since this is the table the
default run ends with. A run of the whole sweep takes these rows from its models suite instead
of measuring them twice (:func:`select`).
"""

from __future__ import annotations

from . import models as models_suite
from .models import STEPS, Point
from .timing import markdown_table

DENSITY = 0.03
REPEATS = 9  # timed rounds per point; the models suite's sweep uses 3
QUICK_REPEATS = 2
LABELS = {"auto": "fused (auto)", "reference": "reference", "eager": "eager (step-by-step)"}


def cases(quick: bool = False, models=None, modalities=None) -> list[tuple]:
    """The models suite's M1 cases (its sizes and batches) at DENSITY, in its case format;
    models / modalities: only these (None: all)."""
    return [
        (name, modality, options, batch, (DENSITY,))
        for name, modality, options, batch, _ in (models_suite.QUICK_CASES if quick else models_suite.CASES)
        if name == "m1" and (models is None or name in models) and (modalities is None or modality in modalities)
    ]


def run(device, quick: bool = False, repeats=None, progress: bool = True, models=None, modalities=None) -> list[Point]:
    repeats = repeats or (QUICK_REPEATS if quick else REPEATS)
    return models_suite.run(
        device, quick=quick, repeats=repeats, progress=progress, cases=cases(quick, models, modalities)
    )


def select(points: list[Point], quick: bool = False, models=None, modalities=None):
    """The headline rows out of a models suite run, or None if it did not measure all of them."""
    wanted = {(modality, batch) for _, modality, _, batch, _ in cases(quick, models, modalities)}
    chosen = [p for p in points if p.model == "m1" and p.target_density == DENSITY and (p.modality, p.batch) in wanted]
    if not wanted or {(p.modality, p.batch) for p in chosen} != wanted:
        return None
    return chosen


def caption(points: list[Point]) -> str:
    sizes = ", ".join(
        f"{modality} batch {batch} x {STEPS[modality]} steps"
        for modality, batch in dict.fromkeys((p.modality, p.batch) for p in points)
    )
    return (
        f"M1 ({sizes}; the study's layer sizes unless run with --quick), {DENSITY:.0%} input "
        "spikes and hidden layers calibrated to fire at that rate. Inference: one forward call "
        "without gradients; train: forward, cross-entropy, backward and an AdamW step. Median ms "
        "of interleaved rounds; x eager and x reference are speed-ups; SynOps are counted by the "
        "fused kernels in one forward; peak MB is the tensor memory one call allocates."
    )


def table(points: list[Point]) -> str:
    headers = [
        "modality",
        "mode",
        "backend",
        "surrogate",
        "band active %",
        "batch",
        "hidden density",
        "ms",
        "samples/s",
        "x eager",
        "x reference",
        "SynOps/sample",
        "peak MB",
    ]
    rows = [
        [
            p.modality,
            p.mode,
            LABELS.get(p.backend, p.backend),
            p.surrogate,
            models_suite.band_range(p.band_active),
            p.batch,
            p.hidden_density,
            p.ms,
            p.samples_per_s,
            p.speedup_vs_eager,
            p.speedup_vs_reference,
            f"{p.synops_per_sample:,.0f}",
            p.peak_mb,
        ]
        for p in points
    ]
    return caption(points) + "\n\n" + markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return models_suite.as_json(points)
