"""python -m sparsespike.bench.gpu_check [--out DIR] [--dry-run] [--device cuda|cpu] [--budget-s 480] [--wheels DIR] [--part NAME ...]

A time-boxed check of a GPU machine (``make gpu-check``): the CUDA tests, the bench on the device,
snnTorch and SpikingJelly on the same device, the fused LIF's bandwidth against a device copy and
the dispatch crossover, each part in a process of its own with a budget, stopped (and recorded as
"timeout") when it overruns, so that a hang cannot eat the machine's time. A part that finishes
early leaves its time to the parts after it; the parts after it always keep their own budgets.

Written into --out as the run goes (a killed run leaves what it measured): per part NAME.json
(command, budget, status, wall time, parsed results), its stdout and stderr (NAME.out,
NAME.err), the JSON it writes itself (bench JSON, test report), and summary.md / summary.json,
rewritten after every part. --dry-run prints and writes the plan (every part, its command and
budget) and runs nothing. --device cpu (with small shapes, --tiny, its default there) runs the
whole check on a CPU in a few minutes: the CUDA tests are then collected and skipped.

snnTorch and SpikingJelly come from wheels in --wheels (default gpu-wheels/, made by ``make
gpu-wheels`` on a machine with network), installed with ``pip install --no-index --no-deps
--target`` into a temporary folder put on the parts' PYTHONPATH (the system site-packages are
never touched); without wheels the baselines part is recorded as skipped.

Exit status: 0 when every part passed or was skipped, 1 when one failed or timed out, 2 for a
mistake in the flags or no CUDA device for --device cuda.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .._atomic import atomic_write

PROG = "python -m sparsespike.bench.gpu_check"
ROOT = Path(__file__).resolve().parents[2]  # the checkout: tests/ and the sparsespike package
DEFAULT_BUDGET_S = 480.0
GRACE_S = 5.0  # after SIGTERM, before SIGKILL
MIN_START_S = 5.0  # a part with less time left than this is skipped

# (name, default budget in s of DEFAULT_BUDGET_S, what it measures); the order they run in
PLAN = (
    ("cuda-tests", 150, "the tests marked cuda (pytest -m cuda), JSON report of pass/fail"),
    ("bench-spike_linear", 50, "spike_linear over density vs dense F.linear (cuBLAS) and embedding_bag"),
    ("bench-conv", 40, "spike_conv2d over density vs F.conv2d (cuDNN)"),
    ("bench-lif", 20, "fused LIF vs the reference loop (and snnTorch's Leaky with wheels)"),
    ("bench-hgrn", 25, "HGRN scan vs the reference"),
    ("bench-hopfield", 20, "modern Hopfield step (the study's M3 shape) vs torch's scaled_dot_product_attention"),
    ("bench-models", 65, "M1 audio and visual at 3%, inference and train step, vs reference and eager"),
    ("bandwidth", 20, "fused LIF forward GB/s vs a device copy_ of the same size"),
    ("calibrate", 40, "dense / event-driven dispatch crossover (the bench's --calibrate)"),
    ("baselines", 50, "M1 audio vs snnTorch and SpikingJelly on the device (needs --wheels)"),
)
NAMES = tuple(name for name, *_ in PLAN)
BENCH_SUITES = {"bench-spike_linear": "spike_linear", "bench-conv": "conv", "bench-lif": "lif"}
BENCH_SUITES |= {"bench-hgrn": "hgrn", "bench-hopfield": "hopfield", "bench-models": "headline"}
WANTS_WHEELS = ("bench-lif", "baselines")
# timed rounds per point: the device's defaults, and a CPU check's (--tiny)
REPEATS = {"bench": 3, "bandwidth": 10, "calibrate": 3, "baselines": 3}
TINY_REPEATS = {"bench": 1, "bandwidth": 2, "calibrate": 1, "baselines": 1}


@dataclass
class Part:
    name: str
    what: str
    budget_s: float
    command: list[str]
    env: dict = field(default_factory=dict)  # added to the environment
    result: str | None = None  # the JSON the part writes itself
    status: str = "planned"  # planned, running, passed, failed, timeout, skipped: <why>, interrupted
    allowed_s: float | None = None  # its budget plus the time the parts before it left
    returncode: int | None = None
    started: str | None = None
    wall_s: float | None = None
    details: dict = field(default_factory=dict)

    def shell(self) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + " ".join(map(shlex.quote, self.command))


class Interrupted(Exception):
    """SIGTERM (or SIGINT) reached the driver: stop the running part and write what there is."""


def _parse(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1])
    p.add_argument("--out", default="gpu-check-results", help="folder for the results (default gpu-check-results)")
    p.add_argument("--dry-run", action="store_true", help="print and write the plan; run nothing")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="default cuda")
    p.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help=f"seconds for the whole check, shared among the parts in proportion to their default budgets "
        f"(default {DEFAULT_BUDGET_S:.0f}: " + ", ".join(f"{n} {b}" for n, b, _ in PLAN) + ")",
    )
    p.add_argument("--wheels", default="gpu-wheels", help="folder of snnTorch/SpikingJelly wheels (default gpu-wheels)")
    p.add_argument("--part", action="append", choices=NAMES, help="run only these parts (default all)")
    p.add_argument("--repeats", type=int, help="timed rounds per point for every part (default: per part)")
    p.add_argument(
        "--tiny",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="small shapes and one round (the bench's --quick): default with --device cpu",
    )
    args = p.parse_args(argv)
    if args.budget_s <= 0:
        p.error(f"--budget-s {args.budget_s}: must be > 0")
    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats {args.repeats}: must be >= 1")
    if args.tiny is None:
        args.tiny = args.device == "cpu"
    return args


def _wheel_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.whl")) if folder.is_dir() else []


def plan(args, out: Path, wheels_path: str | None = None) -> list[Part]:
    """The parts to run, with their commands and budgets (scaled to --budget-s)."""
    chosen = [entry for entry in PLAN if args.part is None or entry[0] in args.part]
    scale = args.budget_s / sum(budget for _, budget, _ in chosen)
    py = sys.executable
    repeats = TINY_REPEATS if args.tiny else REPEATS
    inherited = [d for d in os.environ.get("PYTHONPATH", "").split(os.pathsep) if d and d != str(ROOT)]
    pythonpath = [str(ROOT)] + inherited
    has_wheels = bool(_wheel_files(Path(args.wheels)))
    parts = []
    for name, budget, what in chosen:
        result = str(out / f"{name}.result.json")
        env = {}
        if name == "cuda-tests":
            command = [py, "-m", "pytest", "-p", "no:cacheprovider", "-m", "cuda", "-v", "tests"]
            env["SPARSESPIKE_TEST_REPORT"] = result
        elif name in BENCH_SUITES:
            n = args.repeats or repeats["bench"]
            command = [py, "-m", "sparsespike.bench", "--suite", BENCH_SUITES[name], "--device", args.device]
            command += ["--repeats", str(n), "--json", result] + (["--quick"] if args.tiny else [])
        else:
            n = args.repeats or repeats[name]
            command = [py, "-m", "sparsespike.bench.gpu_parts", name, "--device", args.device]
            command += ["--repeats", str(n), "--json", result] + (["--tiny"] if args.tiny else [])
        path = pythonpath
        if name in WANTS_WHEELS and has_wheels:
            path = [wheels_path or "<wheels installed into a temporary folder>"] + pythonpath
        env["PYTHONPATH"] = os.pathsep.join(path)
        part = Part(name, what, round(budget * scale, 1), command, env, result)
        if name == "baselines" and not has_wheels:
            part.status = f"skipped: no wheels in {args.wheels}"
        if name == "cuda-tests" and not (ROOT / "tests").is_dir():
            part.status = f"skipped: no tests folder in {ROOT} (an installed copy)"
        parts.append(part)
    return parts


def _install_wheels(folder: Path, target: Path) -> dict:
    """pip install --no-index --no-deps --target; if pip is missing or fails, unpack the wheels
    (pure Python: unpacking is installing) into the target."""
    wheels = _wheel_files(folder)
    info = {"folder": str(folder), "wheels": [w.name for w in wheels], "target": str(target)}
    if not wheels:
        return info | {"method": "none", "status": f"skipped: no wheels in {folder}"}
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target", str(target)]
    try:
        done = subprocess.run(command + [str(w) for w in wheels], capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return info | {"method": "pip", "status": "installed"}
        info["pip_error"] = (done.stderr or done.stdout).strip()[-2000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["pip_error"] = f"{type(exc).__name__}: {exc}"
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(target)
    return info | {"method": "unzip", "status": "installed"}


def _device_info(device: str) -> dict:
    code = (
        "import json, torch\n"
        "info = {'torch': torch.__version__, 'cuda': torch.cuda.is_available()}\n"
        "info['gpu'] = torch.cuda.get_device_name(0) if info['cuda'] else None\n"
        "try:\n    import triton; info['triton'] = triton.__version__\n"
        "except Exception:\n    info['triton'] = None\n"
        "print(json.dumps(info))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except Exception as exc:  # a broken torch: the parts will say more
        return {"error": f"{type(exc).__name__}: {exc}"}


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the part's process group, SIGKILL after GRACE_S."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 30.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_part(part: Part, out: Path, allowed: float, write) -> None:
    part.allowed_s = round(allowed, 1)
    part.started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    part.status = "running"
    write()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **part.env}
    start = time.perf_counter()
    with open(out / f"{part.name}.out", "wb") as stdout, open(out / f"{part.name}.err", "wb") as stderr:
        proc = subprocess.Popen(
            part.command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            part.returncode = proc.wait(timeout=allowed)
            part.status = "passed" if part.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            _stop(proc)
            part.status = "timeout"
        except BaseException:
            _stop(proc)
            part.status = "interrupted"
            raise
        finally:
            part.wall_s = round(time.perf_counter() - start, 1)
            part.details = _details(part, out)
            write()


def _details(part: Part, out: Path) -> dict:
    result = Path(part.result) if part.result else None
    data = None
    if result is not None and result.exists():
        try:
            data = json.loads(result.read_text())
        except (OSError, ValueError):
            data = None
    if part.name == "cuda-tests":
        if data is not None:
            return {"counts": data.get("counts", {}), "failed": data.get("failed", []), "source": "report"}
        # no report (stopped before its end): the verbose log's per-test lines so far
        counts, failed = {}, []
        log = out / f"{part.name}.out"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            for outcome in ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS"):
                if line.startswith("tests/") and f" {outcome}" in line:
                    counts[outcome.lower()] = counts.get(outcome.lower(), 0) + 1
                    if outcome in ("FAILED", "ERROR"):
                        failed.append(line.split(" ")[0])
                    break
        return {"counts": counts, "failed": failed, "source": "log (the run did not finish)"}
    if data is None:
        return {}
    if part.name in BENCH_SUITES:
        return {"wall_s": data.get("run", {}).get("wall_s"), "points": sum(map(len, data.get("suites", {}).values()))}
    if part.name == "calibrate":
        return {"crossover": {k: data["crossover"][k] for k in ("forward_density", "backward_density")}}
    if part.name == "bandwidth":
        return {"share_of_copy": {f"{p['shape']} {p['backend']}": p["share_of_copy"] for p in data["points"]}}
    if part.name == "baselines":
        return {"missing": data.get("missing", {}), "points": len(data.get("points", []))}
    return {}


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def summary_md(state: dict, parts: list[Part], out: Path) -> str:
    dev = state.get("device_info", {})
    lines = [
        "# sparsespike GPU check",
        "",
        f"- device: {state['device']}"
        + (f" ({dev['gpu']})" if dev.get("gpu") else "")
        + (f", torch {dev['torch']}, triton {dev.get('triton')}" if dev.get("torch") else ""),
        f"- started {state['started']}, commit {state['commit']}, budget {state['budget_s']:.0f} s, "
        f"elapsed {state['elapsed_s']:.0f} s" + ("" if state["finished"] else " (not finished)"),
        f"- wheels: {state['wheels'].get('status', '-')}"
        + (
            f" ({', '.join(state['wheels']['wheels'])}, by {state['wheels']['method']})"
            if state["wheels"].get("method") not in (None, "none")
            else ""
        ),
        "",
        "| part | status | wall s | budget s | allowed s | what |",
        "|---|---|---|---|---|---|",
    ]
    for p in parts:
        wall = "-" if p.wall_s is None else f"{p.wall_s:.1f}"
        allowed = "-" if p.allowed_s is None else f"{p.allowed_s:.0f}"
        lines.append(f"| {p.name} | {p.status} | {wall} | {p.budget_s:.0f} | {allowed} | {p.what} |")
    for p in parts:
        lines += ["", f"## {p.name}: {p.status}", "", f"`{p.shell()}`", ""]
        if p.name == "cuda-tests" and p.details:
            counts = ", ".join(f"{v} {k}" for k, v in sorted(p.details["counts"].items())) or "none"
            lines.append(f"tests ({p.details['source']}): {counts}")
            lines += [f"- failed: {n}" for n in p.details["failed"]]
        elif p.status in ("passed", "failed", "timeout", "interrupted") and p.name != "cuda-tests":
            text = (
                (out / f"{p.name}.out").read_text(errors="replace").strip() if (out / f"{p.name}.out").exists() else ""
            )
            if text:
                lines += [text]
        if p.status in ("failed", "timeout", "interrupted"):
            lines += ["", f"last lines of {p.name}.err:", "", "```", _tail(out / f"{p.name}.err"), "```"]
    return "\n".join(lines) + "\n"


def _write_all(state: dict, parts: list[Part], out: Path, started_clock: float) -> None:
    state["elapsed_s"] = round(time.perf_counter() - started_clock, 1)
    for p in parts:
        atomic_write(out / f"{p.name}.json", json.dumps(asdict(p) | {"shell": p.shell()}, indent=2).encode())
    atomic_write(out / "summary.json", json.dumps(state | {"parts": [asdict(p) for p in parts]}, indent=2).encode())
    atomic_write(out / "summary.md", summary_md(state, parts, out).encode())


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else list(argv))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    from .stamp import commit

    state = {
        "device": args.device,
        "tiny": args.tiny,
        "dry_run": args.dry_run,
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit(),
        "budget_s": args.budget_s,
        "elapsed_s": 0.0,
        "finished": False,
        "wheels": {"folder": args.wheels, "wheels": [w.name for w in _wheel_files(Path(args.wheels))]},
    }
    if args.dry_run:
        parts = plan(args, out)
        state["wheels"]["status"] = (
            "would install" if state["wheels"]["wheels"] else f"skipped: no wheels in {args.wheels}"
        )
        print(f"# {PROG}: dry run, {len(parts)} parts, budget {args.budget_s:.0f} s, device {args.device}, out {out}")
        for p in parts:
            print(
                f"\n{p.name} (budget {p.budget_s:.0f} s): {p.what}"
                + ("" if p.status == "planned" else f" [{p.status}]")
            )
            print(f"  {p.shell()}")
        state["finished"] = True
        _write_all(state, parts, out, clock)
        print(f"\nwrote {out / 'summary.md'}")
        return 0

    handlers = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with tempfile.TemporaryDirectory(prefix="sparsespike-wheels-") as target:
            return _run(args, out, state, clock, Path(target))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _run(args, out: Path, state: dict, clock: float, target: Path) -> int:
    state["device_info"] = _device_info(args.device)
    parts = plan(args, out, str(target))
    if args.device == "cuda" and not state["device_info"].get("cuda"):
        state["error"] = f"--device cuda: no CUDA device ({state['device_info']})"
        state["finished"] = True
        _write_all(state, parts, out, clock)
        print(f"{PROG}: {state['error']}", file=sys.stderr)
        return 2
    state["wheels"] = _install_wheels(Path(args.wheels), target)
    print(f"# {PROG}: {len(parts)} parts, budget {args.budget_s:.0f} s, device {args.device}, out {out}", flush=True)
    print(f"wheels: {state['wheels']['status']}", flush=True)
    write = lambda: _write_all(state, parts, out, clock)  # noqa: E731
    write()
    try:
        for i, part in enumerate(parts):
            if part.status != "planned":  # skipped at planning
                print(f"{part.name}: {part.status}", flush=True)
                continue
            later = sum(p.budget_s for p in parts[i + 1 :] if p.status == "planned")
            allowed = args.budget_s - (time.perf_counter() - clock) - later
            if allowed < MIN_START_S:
                part.status = "skipped: no time left"
                part.allowed_s = round(max(allowed, 0.0), 1)
                write()
                print(f"{part.name}: {part.status}", flush=True)
                continue
            print(f"{part.name}: running (budget {part.budget_s:.0f} s, allowed {allowed:.0f} s)", flush=True)
            _run_part(part, out, allowed, write)
            print(f"{part.name}: {part.status} in {part.wall_s:.1f} s", flush=True)
    except Interrupted as exc:
        state["error"] = f"interrupted by {exc}"
        print(f"{PROG}: {state['error']}", file=sys.stderr)
    state["finished"] = "error" not in state
    write()
    print(f"wrote {out / 'summary.md'} ({state['elapsed_s']:.0f} s)")
    if "error" in state:
        return 1
    return 0 if all(p.status == "passed" or p.status.startswith("skipped") for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
