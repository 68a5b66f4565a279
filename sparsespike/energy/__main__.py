"""Energy per inference of one of the study's models, from the synaptic operations its kernels performed:
``python -m sparsespike.energy --checkpoint runs/m4-randman/best.pt`` (model and dataset from the
checkpoint) or ``python -m sparsespike.energy --model m1 --dataset randman`` (an untrained model whose
layers are calibrated to fire at ~3%, for a first look at the arithmetic).

Prints the per-layer table and totals (real-valued inputs counted as MACs, and as SynOps) per dataset;
--json writes the same as JSON (every profile in --profiles).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

import torch

from .._atomic import atomic_write
from .._cli import Parser, data_folders, guarded, input_file, output_file, positive_float, positive_int
from .._cli import device as check_device
from ..data import dataset_info, load_dataset
from ..models.calibration import calibrate_firing
from ..models.registry import MODEL_NAMES, build_model, model_modalities
from ..training import default_dataset, load_trained
from .profiles import DEFAULT_PROFILE, PROFILES, EnergyProfile
from .report import measure_energy

PROG = "python -m sparsespike.energy"


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default=None,
        help="the model (default: the checkpoint's)",
    )
    p.add_argument("--checkpoint", default=None, help="a best.pt / last.pt written by python -m sparsespike.train")
    p.add_argument(
        "--dataset",
        default=None,
        help="default: the checkpoint's; without a checkpoint saccade-digits (a model that takes several "
        "modalities: one per modality, the joint model saccade-digits+randman)",
    )
    p.add_argument("--split", default="test")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--samples", type=positive_int, default=256, help="how many samples to measure (per dataset)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"table's profile: {', '.join(PROFILES)}, or custom")
    p.add_argument("--accumulate-pj", type=positive_float, default=None, help="with --mac-pj: a custom profile")
    p.add_argument("--mac-pj", type=positive_float, default=None)
    p.add_argument(
        "--real-input",
        choices=("mac", "synop"),
        default="mac",
        help="how layers with real-valued input count in the headline (both are always reported)",
    )
    p.add_argument("--backend", choices=("auto", "reference", "cpp", "triton"), default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="untrained models: initial weights")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--no-progress", action="store_true")
    return p


def _profile(args) -> object:
    if (args.accumulate_pj is None) != (args.mac_pj is None):
        raise ValueError("a custom profile needs both --accumulate-pj and --mac-pj")
    if args.accumulate_pj is not None:
        return EnergyProfile(
            args.profile if args.profile not in PROFILES else "custom", args.accumulate_pj, args.mac_pj
        )
    if args.profile not in PROFILES:
        raise ValueError(
            f"unknown --profile {args.profile!r}; presets: {', '.join(PROFILES)} (or give --accumulate-pj and --mac-pj)"
        )
    return args.profile


def _model_and_datasets(args):
    """(model, model name, [(dataset name, its modality)], trained)."""
    if args.checkpoint is not None:
        model, config = load_trained(args.checkpoint, device=args.device, backend=args.backend)
        if args.model is not None and args.model != config.model:
            raise ValueError(f"--model {args.model} but the checkpoint {args.checkpoint} holds {config.model}")
        name, dataset = config.model, args.dataset or config.dataset
    else:
        name = args.model or "m1"
        dataset = args.dataset or default_dataset(name)
        model = None
    names = dataset.split("+")
    modalities = model_modalities(name)  # None: a model built for one modality
    if len(names) != (len(modalities) if modalities else 1):
        takes = "+".join(f"<{m}>" for m in modalities) if modalities else "one dataset"
        raise ValueError(f"--dataset {dataset!r} does not fit model {name} (it takes {takes})")
    infos = [dataset_info(n) for n in names]
    if model is None:
        torch.manual_seed(args.seed)
        model = build_model(name, infos[0].modality, num_classes=infos[0].num_classes, backend=args.backend)
        model = model.to(args.device)
    return model, name, [(n, info.modality) for n, info in zip(names, infos)], args.checkpoint is not None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status 0; 2 for a mistake in the flags or the set-up (one line naming it: flags, paths,
    the checkpoint, the datasets)."""
    return guarded(PROG, lambda ready: _run(_parser().parse_args(argv), ready))


def _run(args, ready) -> int:
    check_device("--device", args.device, allow_auto=False)
    input_file("--checkpoint", args.checkpoint)
    output_file("--json", args.json)
    data_folders(args)
    profile = _profile(args)
    model, name, datasets, trained = _model_and_datasets(args)
    # every dataset opened before the first is measured: a missing one is a set-up error
    loaders = [
        (
            dataset,
            modality,
            torch.utils.data.DataLoader(
                load_dataset(dataset, args.split, data_dir=args.data_dir, cache_dir=args.cache_dir),
                batch_size=args.batch_size,
                shuffle=False,
            ),
        )
        for dataset, modality in datasets
    ]
    ready()
    results = []
    for dataset, modality, loader in loaders:
        if not trained:
            x = next(iter(loader))[0].to(args.device)
            calibrate_firing(model, lambda x=x, modality=modality: model(x, modality))
        report = measure_energy(
            model,
            loader,
            modality,
            args.real_input,
            args.samples,
            args.device,
            name,
            dataset,
            progress=not args.no_progress,
        )
        print(report.markdown(profile) + "\n")
        custom = [profile] if isinstance(profile, EnergyProfile) else []
        results.append(report.as_dict([*PROFILES.values(), *custom]))
    if not trained:
        print("note: an untrained model, calibrated to fire at ~3%; pass --checkpoint for a trained one")
    if args.json:
        payload = {"checkpoint": args.checkpoint, "trained": trained, "split": args.split, "results": results}
        atomic_write(args.json, (json.dumps(payload, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
