"""python -m sparsespike.bench [--full | --suite NAME ...] [--quick] [--json PATH] [--device cpu|cuda] [--calibrate] [--plots DIR] [--profile PATH]

By default runs the headline: the study's M1, audio and visual, at its activity (3%), fused vs
reference vs the step-by-step eager baseline, inference and train step (a few minutes on 2
cores); --full runs every suite, ending with the same headline table. Prints a Markdown table per
suite on stdout (progress on stderr) and writes every measured point, the machine, the run's
stamp (date, commit, command), the backends and (with --calibrate) the measured dispatch
crossover, which can be fed back through SPARSESPIKE_CROSSOVER, as JSON (--json, default
runs/bench/<UTC date-time>.json).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import _cli, dispatch
from .._atomic import atomic_write
from .._backend import backends
from . import headline
from . import models as models_suite
from . import spike_linear as spike_linear_suite
from .stamp import machine_info, run_info
from .suites import ALL, SWEEP

PROG = "python -m sparsespike.bench"
JSON_FOLDER = Path("runs") / "bench"  # ignored by git in a checkout


def _parse(argv):
    p = _cli.Parser(prog=PROG, description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--full",
        action="store_true",
        help="every suite at full sizes and repeats, then the headline table (about 25 minutes on 2 cores)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller models, fewer densities and repeats (with --full: every suite in about a minute on 2 cores)",
    )
    p.add_argument(
        "--json", metavar="PATH", help=f"write all measurements as JSON here (default {JSON_FOLDER}/<date-time>.json)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--suite",
        action="append",
        choices=sorted(ALL),
        help="suites to run (default: headline; --full: all)",
    )
    p.add_argument(
        "--repeats",
        type=_cli.positive_int,
        help="timed repeats per point (default: each suite's own, the headline 9; fewer with --quick)",
    )
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
        help="models and headline suites: only these models (default all; the headline has M1 only)",
    )
    p.add_argument(
        "--modality",
        action="append",
        choices=("audio", "visual"),
        help="models and headline suites: only these modalities (default both)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


def _write_json(path: str, data: dict) -> None:
    """Atomic: a reader never sees a half-written file."""
    atomic_write(path, json.dumps(data, indent=2).encode())


def _suites(args) -> list[str]:
    return args.suite or (list(SWEEP) if args.full else ["headline"])


def _check(args) -> None:
    """Every flag and output path, before the first suite runs."""
    _cli.device("--device", args.device, allow_auto=False)
    if args.full and args.suite:
        raise _cli.UsageError(f"--full runs every suite: give it or --suite {','.join(args.suite)}, not both")
    _cli.output_file("--json", args.json)
    _cli.output_file("--profile", args.profile)
    _cli.output_dir("--plots", args.plots)
    suites = _suites(args)
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
    if "headline" in suites and not headline.cases(args.quick, args.model, args.modality):
        raise _cli.UsageError(
            f"--model {','.join(args.model or ['any'])}: the headline is M1 (for other models: --suite models or --full)"
        )


def main(argv=None) -> int:
    """Exit status 0; 2 for a mistake in the flags (one line naming it), found before any suite runs."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return _cli.guarded(PROG, lambda ready: _run(_parse(argv), argv, ready))


def _run(args, argv: list[str], ready) -> int:
    started = datetime.now(timezone.utc)
    args.json = args.json or str(JSON_FOLDER / f"{started:%Y%m%d-%H%M%S}.json")
    _check(args)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ready()
    clock = time.perf_counter()
    progress = not args.no_progress
    names = _suites(args)
    if progress and names == ["headline"]:
        print("the headline: M1 audio and visual at 3% activity; every suite: --full", file=sys.stderr)
    report = {
        "machine": machine_info(device),
        "run": run_info(PROG, argv, started),
        "backends": backends(),
        "suites": {},
    }
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

    measured = {}
    for name in names:
        suite = ALL[name]
        filters = {"models": args.model, "modalities": args.modality} if name in ("models", "headline") else {}
        measured[name] = suite.run(device, quick=args.quick, repeats=args.repeats, progress=progress, **filters)
        report["suites"][name] = suite.as_json(measured[name])
        if name != "headline":  # printed last
            unit = "" if name in ("accuracy", "recipe", "readout") else " (median ms)"  # training runs: accuracies
            print(f"## {name}{unit}\n")
            print(suite.table(measured[name]))
            print()

    if args.plots:
        from .plots import plot_models

        for path in plot_models(report["suites"]["models"], args.plots):
            print(f"wrote {path}")
    if args.profile:
        top = models_suite.profile_train_step(device, args.profile, quick=args.quick)
        print(f"## profile: one M1 train step (auto)\n\n{top}\nwrote {args.profile}")
    if args.full:
        measured["headline"] = _full_headline(args, device, measured.get("models", []), progress)
        if measured["headline"]:
            report["suites"]["headline"] = headline.as_json(measured["headline"])
    if measured.get("headline"):
        print("## headline (median ms)\n")
        print(headline.table(measured["headline"]))
        print()
    report["run"]["wall_s"] = round(time.perf_counter() - clock, 1)
    _write_json(args.json, report)
    print(f"wrote {args.json}")
    return 0


def _full_headline(args, device, models_points, progress: bool) -> list:
    """The headline rows of a full run: its models suite's, or measured when it has not got
    them all (--quick sweeps other densities); none when --model leaves M1 out."""
    filters = {"models": args.model, "modalities": args.modality}
    if not headline.cases(args.quick, **filters):
        return []
    chosen = headline.select(models_points, args.quick, **filters)
    if chosen is not None:
        return chosen
    return headline.run(device, quick=args.quick, repeats=args.repeats, progress=progress, **filters)


if __name__ == "__main__":
    sys.exit(main())
