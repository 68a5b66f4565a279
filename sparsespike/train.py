"""Train the study's models: ``python -m sparsespike.train --model m4 --dataset randman``.

Multi-process (one machine or several): ``torchrun --nproc_per_node 2 -m sparsespike.train ...``
(gloo on CPU, nccl on CUDA); rank 0 writes the files, so with several machines --out must be on a
shared file system for --resume.

Writes to --out: metrics.jsonl (one JSON object per epoch), last.pt (everything needed to resume,
written atomically every epoch) and best.pt (the weights with the best evaluation accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from ._cli import (
    Parser,
    UsageError,
    add_activity_arguments,
    add_readout_argument,
    add_surrogate_arguments,
    data_folders,
    guarded,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    warn,
)
from ._cli import device as check_device
from .models import MEMORY_MODES, memory_from_deprecated
from .training import MODELS, TrainConfig, default_dataset, fit

PROG = "python -m sparsespike.train"


def _parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, default=defaults.model)
    p.add_argument(
        "--dataset",
        default=None,
        help="nmnist, shd, ssc, dvsgesture, or the embedded saccade-digits / randman "
        "(default: saccade-digits; joint: saccade-digits+randman, or e.g. nmnist+shd)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the datasets' files (default: $SPARSESPIKE_DATA or ~/.cache/sparsespike)",
    )
    p.add_argument("--cache-dir", default=None, help="where converted frames are cached (default: inside --data-dir)")
    p.add_argument("--download", action="store_true", help="let tonic download missing datasets")
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="per process")
    p.add_argument("--lr", type=positive_float, default=defaults.lr)
    p.add_argument("--weight-decay", type=non_negative_float, default=defaults.weight_decay)
    p.add_argument(
        "--grad-clip", type=non_negative_float, default=defaults.grad_clip, help="max gradient norm (0: off)"
    )
    p.add_argument(
        "--patience",
        type=positive_int,
        default=defaults.patience,
        help="early stopping: epochs without improvement",
    )
    p.add_argument(
        "--scl-weight",
        type=non_negative_float,
        default=None,
        help="supervised contrastive weight (default: the model's, 0.1 for m2/m5)",
    )
    p.add_argument("--scl-temperature", type=positive_float, default=defaults.scl_temperature)
    p.add_argument(
        "--init",
        choices=("calibrated", "default"),
        default=defaults.init,
        help="calibrated (default): scale the weights of each spiking layer of the --calibrate "
        "modalities so it fires at ~3%% (output 2%%) on a training sample; default: PyTorch's "
        "init everywhere, as the study's code",
    )
    p.add_argument(
        "--calibrate",
        default="audio",
        help="with --init calibrated: the modalities to calibrate, comma-separated (default: audio; "
        "calibrated visual layers silence the output layer within a few steps)",
    )
    p.add_argument(
        "--memory",
        choices=MEMORY_MODES,
        default=None,
        help="m3/m4/m5/joint: the memory over time on the spike sequence (sequence, the default) or the "
        "study code's head on time-mean features (study)",
    )
    # --memory's deprecated names, kept for one release
    p.add_argument("--hgrn", choices=("qin", "study"), default=None, help="deprecated: --memory (qin is sequence)")
    p.add_argument("--hopfield", choices=("sequence", "study"), default=None, help="deprecated: --memory")
    p.add_argument("--backend", choices=("auto", "reference", "cpp", "triton"), default=None)
    add_surrogate_arguments(p)
    add_activity_arguments(p, default_weight=defaults.activity_weight)
    add_readout_argument(p, defaults.readout)
    p.add_argument(
        "--eval-split", default=None, help="default: valid if the dataset has one, else test (the study's protocol)"
    )
    p.add_argument("--limit-train", type=positive_int, default=None, help="train on a fixed random subset of this size")
    p.add_argument("--limit-eval", type=positive_int, default=None)
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:1")
    p.add_argument("--workers", type=non_negative_int, default=defaults.workers, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--out", default=None, help="run folder (default: runs/<model>-<dataset>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last completed epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _memory(args) -> str:
    """--memory, or what its deprecated names --hgrn / --hopfield chose for --model (with a warning)."""
    old = {flag: value for flag, value in (("--hgrn", args.hgrn), ("--hopfield", args.hopfield)) if value is not None}
    if not old:
        return args.memory or TrainConfig.memory
    given = " and ".join(f"{flag} {value}" for flag, value in old.items())
    if args.memory is not None:
        raise UsageError(f"--memory {args.memory}: {given} is its deprecated name; pass --memory only")
    chosen = memory_from_deprecated(args.model, hgrn=args.hgrn, hopfield=args.hopfield)
    warn(
        PROG,
        f"{given}: deprecated, use --memory ("
        + (f"--memory {chosen} for {args.model})" if chosen else f"ignored for {args.model}, as before)"),
    )
    return chosen or TrainConfig.memory


def config_from_args(argv: Optional[Sequence[str]] = None) -> TrainConfig:
    """The run's config; a mistake in the flags raises a UsageError naming the flag (after argparse's
    own checks, which exit with status 2)."""
    args = _parser().parse_args(argv)
    dataset = args.dataset or default_dataset(args.model)
    out = args.out or f"runs/{args.model}-{dataset}"
    check_device("--device", args.device)
    output_dir("--out", out)
    data_folders(args)
    return TrainConfig(
        model=args.model,
        dataset=dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=args.download,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        patience=args.patience,
        scl_weight=args.scl_weight,
        scl_temperature=args.scl_temperature,
        init=args.init,
        calibrate_modalities=tuple(m.strip() for m in args.calibrate.split(",") if m.strip()),
        memory=_memory(args),
        surrogate=args.surrogate,
        surrogate_param=args.surrogate_param,
        grad_band=args.grad_band,
        activity_target=args.activity_target,
        activity_weight=args.activity_weight,
        readout=args.readout,
        backend=args.backend,
        eval_split=args.eval_split,
        limit_train=args.limit_train,
        limit_eval=args.limit_eval,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        out=out,
        resume=args.resume,
        progress=not args.no_progress,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; 2 for a mistake in the flags or the set-up (one line naming it); 1 when the
    training diverged (one line) or the data went bad mid-run."""

    def run(ready) -> int:
        summary = fit(config_from_args(argv), on_ready=ready)
        if os.environ.get("RANK", "0") == "0":  # one summary line, from rank 0 under torchrun
            print(json.dumps({k: v for k, v in summary.items() if k not in ("history", "model")}))
        return 0

    return guarded(PROG, run)


if __name__ == "__main__":
    sys.exit(main())
