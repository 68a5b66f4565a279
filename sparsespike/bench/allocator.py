"""allocator suite: minor page faults per forward of the study's audio M1 (batch 16, 5% input
spikes, one thread) with sparsespike.configure_allocator()'s glibc settings ("reuse") and with
glibc's defaults ("system", SPARSESPIKE_MALLOC=system), after warm-up forwards.

Each setting runs in its own Python process: mallopt is process-wide and cannot be undone, and
this process has already made its choice. One thread, since worker threads' own malloc arenas
would add faults of their own. With glibc's defaults the layers' 3-7 MB blocks go back to the
kernel and fault in again forward after forward (thousands of faults each); kept memory is reused
without faults in a typical forward (the machine may reclaim idle pages now and then, so the
median is the figure, the maximum shows the bursts). Only glibc has these settings; elsewhere the
"reuse" row reports mode "unavailable".
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .timing import Progress, markdown_table

SETTINGS = ("reuse", "system")
MODEL_OPTIONS: dict = {}  # the study's audio M1
BATCH = 16
DENSITY = 0.05
WARMUP = 2
STEPS = 10
QUICK_STEPS = 5

# prints {"mode": what configure() did, "faults": [...], "ms": [...]}, one entry per timed forward
_SCRIPT = """
import json, resource, sys, time
import torch, sparsespike
from sparsespike.models import build_model
spec = json.loads(sys.argv[1])
mode = sparsespike.configure_allocator()
torch.set_num_threads(1)
torch.manual_seed(0)
model = build_model("m1", "audio", **spec["options"])
x = (torch.rand(spec["batch"], 100, 700) < spec["density"]).float()
faults, ms = [], []
with torch.no_grad():
    for _ in range(spec["warmup"]):
        model(x)
    for _ in range(spec["steps"]):
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        model(x)
        ms.append((time.perf_counter() - start) * 1e3)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"mode": mode, "faults": faults, "ms": ms}))
"""


@dataclass
class Point:
    malloc: str  # SPARSESPIKE_MALLOC of the process
    mode: str  # what configure_allocator() did there
    batch: int
    steps: int
    median_faults: int
    max_faults: int
    median_ms: float
    faults: list


def measure(malloc: str, steps: int) -> Point:
    """One process with SPARSESPIKE_MALLOC=malloc, importing this sparsespike."""
    source = str(Path(__file__).resolve().parents[2])  # the folder holding the sparsespike package
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "SPARSESPIKE_MALLOC": malloc, "PYTHONPATH": path}
    spec = {"options": MODEL_OPTIONS, "batch": BATCH, "density": DENSITY, "warmup": WARMUP, "steps": steps}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(spec)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the SPARSESPIKE_MALLOC={malloc} process failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    faults = result["faults"]
    return Point(
        malloc,
        result["mode"],
        BATCH,
        steps,
        statistics.median_low(faults),  # an observed count
        max(faults),
        statistics.median(result["ms"]),
        faults,
    )


def run(device=None, quick: bool = False, repeats=None, progress: bool = True) -> list[Point]:
    """device is not used: the faults are the host's. repeats: timed forwards (default 10, quick 5)."""
    steps = repeats or (QUICK_STEPS if quick else STEPS)
    bar = Progress(len(SETTINGS), enabled=progress)
    points = []
    for malloc in SETTINGS:
        bar.step(f"allocator SPARSESPIKE_MALLOC={malloc}, {steps} forwards")
        points.append(measure(malloc, steps))
    return points


def table(points: list[Point]) -> str:
    headers = ["SPARSESPIKE_MALLOC", "mode", "batch", "forwards", "median faults", "max faults", "median ms (1 thread)"]
    rows = [[p.malloc, p.mode, p.batch, p.steps, p.median_faults, p.max_faults, p.median_ms] for p in points]
    return markdown_table(headers, rows)


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]
