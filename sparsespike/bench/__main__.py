"""python -m sparsespike.bench [--quick] [--json PATH] [--device cpu|cuda] [--calibrate] [--plots DIR] [--profile PATH]

Prints a Markdown table per suite on stdout (progress on stderr) and, with --json, writes every
measured point, the machine, the backends and (with --calibrate) the measured dispatch
crossover, which can be fed back through SPARSESPIKE_CROSSOVER.
"""

from __future__ import annotations

import json
import sys

import torch

from .. import _cli, backends, dispatch
from .._atomic import atomic_write
from . import batch_sweep as batch_suite
from . import conv as conv_suite
from . import hgrn as hgrn_suite
from . import hopfield as hopfield_suite
from . import lif as lif_suite
from . import models as models_suite
from . import spike_linear as spike_linear_suite
from . import supcon as supcon_suite
from . import train_epoch as train_suite
from .timing import machine_info

PROG = "python -m sparsespike.bench"

SUITES = {
    "spike_linear": spike_linear_suite,
    "lif": lif_suite,
    "hgrn": hgrn_suite,
    "hopfield": hopfield_suite,
    "supcon": supcon_suite,
    "conv": conv_suite,
    "train": train_suite,
    "models": models_suite,
    "batch": batch_suite,
}


def _parse(argv):
    p = _cli.Parser(prog=PROG, description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="fewer densities and repeats (under a minute on 2 cores)")
    p.add_argument("--json", metavar="PATH", help="write all measurements as JSON")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--suite", action="append", choices=sorted(SUITES), help="suites to run (default all)")
    p.add_argument("--repeats", type=_cli.positive_int, help="timed repeats per point (default 3 quick, 9 full)")
    p.add_argument("--threads", type=_cli.positive_int, help="torch/OpenMP threads (default torch's)")
    p.add_argument("--calibrate", action="store_true", help="also measure the dense/event-driven crossover")
    p.add_argument("--plots", metavar="DIR", help="write PNG plots of the models suite here")
    p.add_argument(
        "--profile",
        metavar="PATH",
        help="write a torch.profiler trace (Chrome JSON) of one M1 train step at 3%% density",
    )
    p.add_argument(
        "--model",
        action="append",
        choices=("m1", "m2", "m3", "m4", "m5"),
        help="models suite: only these models (default all)",
    )
    p.add_argument(
        "--modality",
        action="append",
        choices=("audio", "visual"),
        help="models suite: only these modalities (default both)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


def _write_json(path: str, data: dict) -> None:
    """Atomic: a reader never sees a half-written file."""
    atomic_write(path, json.dumps(data, indent=2).encode())


def _check(args) -> None:
    """Every flag and output path, before the first suite runs."""
    _cli.device("--device", args.device, allow_auto=False)
    _cli.output_file("--json", args.json)
    _cli.output_file("--profile", args.profile)
    _cli.output_dir("--plots", args.plots)
    suites = args.suite or list(SUITES)
    if args.plots and "models" not in suites:
        raise _cli.UsageError(
            f"--plots {args.plots}: plots the models suite, which is not among --suite "
            f"{','.join(suites)} (add --suite models)"
        )
    if "models" in suites and (args.model or args.modality):
        cases = models_suite.QUICK_CASES if args.quick else models_suite.CASES
        if not any(
            (args.model is None or c[0] in args.model) and (args.modality is None or c[1] in args.modality)
            for c in cases
        ):
            raise _cli.UsageError(
                f"--model {','.join(args.model or ['any'])} --modality "
                f"{','.join(args.modality or ['any'])}: no models case matches"
            )


def main(argv=None) -> int:
    """Exit status 0; 2 for a mistake in the flags (one line naming it), found before any suite runs."""
    return _cli.guarded(PROG, lambda ready: _run(_parse(argv), ready))


def _run(args, ready) -> int:
    _check(args)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ready()
    progress = not args.no_progress
    report = {"machine": machine_info(device), "backends": backends(), "suites": {}}
    print(f"# sparsespike bench on {report['machine']['processor']} ({device}, {torch.get_num_threads()} threads)\n")

    if args.calibrate:
        crossover = spike_linear_suite.calibrate(device, progress=progress)
        report["crossover"] = {device.type: crossover}
        current = dispatch.get_crossover(device.type)
        rows, in_f, out_f = spike_linear_suite.CALIBRATION_SHAPE
        print(f"## dispatch crossover ({rows} x {in_f} -> {out_f})\n")
        print(
            f"measured: forward_density={crossover['forward_density']:.3f} "
            f"backward_density={crossover['backward_density']:.3f} "
            f"(in use: {current.forward_density}, {current.backward_density})"
        )
        print(
            "apply with: SPARSESPIKE_CROSSOVER='"
            + json.dumps(
                {
                    device.type: {
                        "forward_density": round(crossover["forward_density"], 4),
                        "backward_density": round(crossover["backward_density"], 4),
                    }
                }
            )
            + "'\n"
        )

    for name in args.suite or list(SUITES):
        suite = SUITES[name]
        filters = {"models": args.model, "modalities": args.modality} if name == "models" else {}
        points = suite.run(device, quick=args.quick, repeats=args.repeats, progress=progress, **filters)
        report["suites"][name] = suite.as_json(points)
        print(f"## {name} (median ms)\n")
        print(suite.table(points))
        print()

    if args.plots:
        from .plots import plot_models

        for path in plot_models(report["suites"]["models"], args.plots):
            print(f"wrote {path}")
    if args.profile:
        top = models_suite.profile_train_step(device, args.profile, quick=args.quick)
        print(f"## profile: one M1 train step (auto)\n\n{top}\nwrote {args.profile}")
    if args.json:
        _write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
