"""recipe suite: what makes the study's models learn on the embedded sets, measured. Each trial trains
one model with the training loop's defaults except what the trial names (learning rate,
initialisation, activity regulariser weight), one seed, a fixed number of epochs on
all of the training set: randman (2,000 samples) for audio at the study's sizes, saccade-digits
(1,437) for visual with the default study run's 8/16-channel encoder. Reported per trial: the best
eval accuracy and its epoch, the eval accuracy after every epoch, the hidden layers' mean firing
rate in the last epoch (the highest layer and the mean over layers: the study's sparsity is
1 - rate), and the wall time (data loading included; not a benchmark).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import torch

from .timing import Progress, markdown_table
from .training_run import train_once

AUDIO = {"dataset": "randman"}
VISUAL = {"dataset": "saccade-digits", "model_options": {"hidden_sizes": (8, 16)}, "init": "default"}
RECIPE_LR = 3e-3
EPOCHS = 8

# (model, modality base, the trial's TrainConfig overrides): M1 over learning rates and visual
# inits, then the activity regulariser's weight at the chosen rate
TRIALS = (
    *[("m1", AUDIO, {"lr": lr}) for lr in (3e-4, 1e-3, RECIPE_LR)],
    *[("m1", VISUAL, {"lr": lr}) for lr in (3e-4, 1e-3, RECIPE_LR)],
    ("m1", VISUAL, {"lr": RECIPE_LR, "init": "calibrated", "calibrate_modalities": ("visual",)}),
    *[("m1", AUDIO, {"lr": RECIPE_LR, "activity_weight": w}) for w in (10.0, 100.0, 1000.0)],
    *[("m1", VISUAL, {"lr": RECIPE_LR, "activity_weight": w}) for w in (10.0, 100.0)],
)
QUICK_TRIALS = (
    ("m1", {"dataset": "randman", "model_options": {"hidden_sizes": (32, 32), "feature_size": 32}}, {"lr": 3e-3}),
)


@dataclass
class Point:
    model: str
    dataset: str
    trial: str  # what the trial sets besides the defaults
    epochs: int
    train_samples: int  # per epoch
    best_eval_acc: float
    best_epoch: int
    eval_curve: list = field(default_factory=list)  # eval accuracy after each epoch, %
    hidden_rates: dict = field(default_factory=dict)  # per hidden LIF, mean over the last epoch
    seconds: float = 0.0  # wall time of the run (data loading included)
    # a model that takes several modalities: each one's eval accuracy at the best epoch, %
    best_eval_by_modality: dict = field(default_factory=dict)


def _label(overrides: dict) -> str:
    parts = []
    for key, value in overrides.items():
        if key == "calibrate_modalities":
            continue
        parts.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(parts)


def _train(
    model: str, base: dict, overrides: dict, epochs: int, quick: bool, device: torch.device, label=_label
) -> Point:
    config, summary = train_once(
        device,
        model=model,
        epochs=epochs,
        batch_size=16 if quick else 32,
        limit_train=48 if quick else None,
        limit_eval=32 if quick else None,
        **{**base, **overrides},  # a trial's setting replaces its base's (visual init)
    )
    history = summary["history"]
    best = history[summary["best_epoch"] - 1] if summary["best_epoch"] > 0 else history[-1]
    by_modality = {key[5:-4]: round(value, 2) for key, value in best.items() if _per_modality(key)}
    return Point(
        model,
        config.dataset,
        label(overrides),
        epochs,
        history[-1]["train_samples"],
        summary["best_eval_acc"],
        summary["best_epoch"],
        [round(row["eval_acc"], 2) for row in history],
        history[-1].get("train_hidden_rates", {}),
        sum(row["train_seconds"] + row["eval_seconds"] for row in history),
        by_modality,
    )


def _per_modality(key: str) -> bool:
    return key.startswith("eval_") and key.endswith("_acc") and key != "eval_acc"


def run(device: torch.device, quick: bool = False, repeats=None, progress: bool = True) -> list[Point]:
    """Every trial, trained once (``repeats`` does not apply)."""
    return run_trials(device, QUICK_TRIALS if quick else TRIALS, 1 if quick else EPOCHS, quick, progress)


def run_trials(device: torch.device, trials, epochs: int, quick: bool, progress: bool, label=_label) -> list[Point]:
    """Train each (model, base, overrides) of ``trials`` once for ``epochs``; ``label(overrides)``
    names the trial."""
    bar = Progress(len(trials), enabled=progress)
    points = []
    for model, base, overrides in trials:
        bar.step(f"{model} {base['dataset']} {label(overrides)}")
        points.append(_train(model, base, overrides, epochs, quick, device, label))
    return points


def table(points: list[Point]) -> str:
    joint = any(p.best_eval_by_modality for p in points)  # the column only where a run has it
    rows = []
    for p in points:
        rates = list(p.hidden_rates.values())
        by_modality = [" / ".join(f"{m} {a:.1f}" for m, a in p.best_eval_by_modality.items())] if joint else []
        rows.append(
            [
                p.model,
                p.dataset,
                p.trial,
                p.epochs,
                p.best_eval_acc,
                *by_modality,
                p.best_epoch,
                " ".join(f"{a:.0f}" for a in p.eval_curve),
                100 * max(rates) if rates else float("nan"),
                100 * statistics.mean(rates) if rates else float("nan"),
                p.seconds,
            ]
        )
    headers = [
        "model",
        "dataset",
        "trial",
        "epochs",
        "best eval acc %",
        *(["by modality %"] if joint else []),
        "best epoch",
        "eval acc % per epoch",
        "hidden rate % (highest layer)",
        "hidden rate % (mean of layers)",
        "wall s",
    ]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
