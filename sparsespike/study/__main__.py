"""Reproduce the study: ``python -m sparsespike.study [--datasets visual,audio] [--data-dir DIR] [--epochs N]
[--seeds N] [--out DIR] [--quick | --full]``.

Trains M1-M5 on both modalities and the joint model, meters each trained model's energy from the
synaptic operations its kernels performed, runs the engram analysis, and writes to --out:
report.md (the study's numbers beside the measured ones), tables/*.md (Table I accuracy, Table II
joint vs parallel, Table III engrams, energy), figures/*.png, results.json, engram.json, and every
training run under runs/. Rerunning with the same settings continues an interrupted study.

Default: the embedded sets (saccade-digits, randman), the measured recipe, 3 seeds; it finishes
within an hour on two CPU cores. With --datasets nmnist,shd and --data-dir holding them, or with
--full on any data: the study's topologies and budget (30 epochs, early stopping; for real data or
a GPU). --quick: CI-sized, checks the pipeline only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .._cli import (
    Parser,
    add_activity_arguments,
    add_readout_argument,
    add_surrogate_arguments,
    data_folders,
    guarded,
    output_dir,
    positive_float,
    positive_int,
)
from .._cli import device as check_device
from ..models.memory import MEMORY_MODES
from .plan import ALL_RUNS, SIZES, STUDY_ACTIVITY_WEIGHT, STUDY_EPOCHS, STUDY_LR, StudyConfig
from .runner import run_study

PROG = "python -m sparsespike.study"


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--datasets",
        default="saccade-digits,randman",
        help="visual,audio datasets (default: the embedded saccade-digits,randman; the study: nmnist,shd)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the datasets (default: $SPARSESPIKE_DATA or ~/.cache/sparsespike)",
    )
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--download", action="store_true", help="let tonic download missing datasets")
    p.add_argument("--models", default=",".join(ALL_RUNS), help="subset of " + ",".join(ALL_RUNS))
    p.add_argument(
        "--size",
        choices=SIZES,
        default=None,
        help="model sizes: study (real data and --full default), small (embedded default: visual "
        "convolutions 8/16 channels), tiny (--quick)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"default: 30 (real data, --full), {STUDY_EPOCHS} (embedded); --quick trains 1",
    )
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help=f"default: 3e-4 (real data, --full), {STUDY_LR:g} (embedded, --quick)",
    )
    p.add_argument(
        "--calibrate",
        default="audio",
        help="modalities whose layers are scaled to fire at ~3%% before training (comma list, '' for "
        "none); the others keep PyTorch's init (default: audio; see sparsespike/study/plan.py)",
    )
    p.add_argument(
        "--limit-train",
        type=positive_int,
        default=None,
        help="train subset per dataset (default: all)",
    )
    p.add_argument("--limit-eval", type=positive_int, default=None, help="eval subset per dataset (default: all)")
    p.add_argument(
        "--energy-samples", type=positive_int, default=256, help="test samples metered per model and modality"
    )
    p.add_argument(
        "--per-class", type=positive_int, default=50, help="engram analysis: test samples per class and modality"
    )
    p.add_argument("--embedding", choices=("tsne", "pca"), default="tsne", help="the figures' 2-D embedding")
    p.add_argument("--out", default="runs/study")
    p.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument(
        "--seeds", type=positive_int, default=None, help="seeds per run: seed, seed+1, ... (default 3; --quick 1)"
    )
    p.add_argument(
        "--memory",
        choices=MEMORY_MODES,
        default=StudyConfig.memory,
        help="memory mode of M3-M5 and the joint model: study (the reference code's heads: the memory once on "
        "the time-mean features, one output LIF step; default) or sequence (the engine's, over the spike "
        "sequence)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", choices=("auto", "reference", "cpp", "triton"), default=None)
    add_surrogate_arguments(p)
    add_activity_arguments(p, default_weight=STUDY_ACTIVITY_WEIGHT)
    add_readout_argument(p, StudyConfig.readout)
    preset = p.add_mutually_exclusive_group()
    preset.add_argument(
        "--quick", action="store_true", help="CI-sized: tiny models, 1 epoch, a few dozen samples, 1 seed"
    )
    preset.add_argument(
        "--full", action="store_true", help="the study's sizes and budget on any data (for real data or a GPU)"
    )
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(argv: Optional[Sequence[str]] = None) -> StudyConfig:
    args = _parser().parse_args(argv)
    check_device("--device", args.device)
    output_dir("--out", args.out, subfolders=("runs", "features", "figures", "tables"))
    data_folders(args)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    if len(names) != 2:
        raise ValueError(f"--datasets takes two names, visual,audio (e.g. nmnist,shd), got {args.datasets!r}")
    return StudyConfig(
        visual=names[0],
        audio=names[1],
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=args.download,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        calibrate=tuple(m.strip() for m in args.calibrate.split(",") if m.strip()),
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        energy_samples=args.energy_samples,
        per_class=args.per_class,
        embedding=args.embedding,
        out=args.out,
        seed=args.seed,
        seeds=args.seeds,
        memory=args.memory,
        device=args.device,
        backend=args.backend,
        surrogate=args.surrogate,
        surrogate_param=args.surrogate_param,
        grad_band=args.grad_band,
        activity_target=args.activity_target,
        activity_weight=args.activity_weight,
        readout=args.readout,
        progress=not args.no_progress,
        quick=args.quick,
        full=args.full,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; 2 for a mistake in the flags or the set-up (one line naming it: flags, paths,
    datasets, a results.json of other settings); 1 when a training run diverged (one line)."""

    def run(ready) -> int:
        run_study(config_from_args(argv), on_ready=ready)
        return 0

    return guarded(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
