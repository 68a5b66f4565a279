"""readout suite: every study model with the study's recipe (lr 3e-3, activity regulariser weight
100, the default study's epochs on all of the training set, one seed), with each readout: the
output spike count (the study's logits) and the output neurons' mean membrane. Then the reference
code's own heads (memory="study": the memory once on the time-mean features, one output LIF step)
with the membrane readout, and M4's with the spike count (its logits are 0/1). The sets and sizes
are the recipe suite's; the joint model trains on both, its accuracy also given per modality.
Reported as the recipe suite: best eval accuracy and epoch, the curve, hidden firing rates, wall
time (not a benchmark).
"""

from __future__ import annotations

import torch

from ..study.plan import STUDY_ACTIVITY_WEIGHT, STUDY_EPOCHS, STUDY_LR
from .recipe import AUDIO, VISUAL, Point, _label, as_json, run_trials, table

__all__ = ["Point", "TRIALS", "as_json", "run", "table"]

JOINT = {"dataset": "saccade-digits+randman", "model_options": {"visual_hidden_sizes": (8, 16)}}
RECIPE = {"lr": STUDY_LR, "activity_weight": STUDY_ACTIVITY_WEIGHT}
SEQUENCE_MODELS = ("m1", "m2", "m3", "m4", "m5")
STUDY_HEADS = ("m3", "m4", "m5")


def _trial(readout: str, memory: str = "sequence") -> dict:
    return {**RECIPE, "readout": readout, **({"memory": memory} if memory != "sequence" else {})}


TRIALS = (
    *[(m, base, _trial(r)) for base in (AUDIO, VISUAL) for m in SEQUENCE_MODELS for r in ("membrane", "count")],
    *[("joint", JOINT, _trial(r)) for r in ("membrane", "count")],
    *[(m, base, _trial("membrane", "study")) for base in (AUDIO, VISUAL) for m in STUDY_HEADS],
    *[("m4", base, _trial("count", "study")) for base in (AUDIO, VISUAL)],
)
QUICK_TRIALS = (
    (
        "joint",
        {
            "dataset": "saccade-digits+randman",
            "model_options": {
                "visual_hidden_sizes": (2, 4),
                "audio_hidden_sizes": (32, 32),
                "feature_size": 32,
            },
        },
        _trial("membrane"),
    ),
)


def label(overrides: dict) -> str:
    """What a trial sets besides the recipe every trial shares."""
    return _label({k: v for k, v in overrides.items() if k not in RECIPE})


def run(device: torch.device, quick: bool = False, repeats=None, progress: bool = True) -> list[Point]:
    """Every trial, trained once (``repeats`` does not apply)."""
    return run_trials(device, QUICK_TRIALS if quick else TRIALS, 1 if quick else STUDY_EPOCHS, quick, progress, label)
