"""Ahead-of-time compile check of every Triton kernel for real GPUs, on a machine without one.

The CPU interpreter checks a kernel's logic, not what the GPU compiler does with it. This check
compiles every kernel specialisation that the ops launch, for sm_80 and sm_90, with the Triton
GPU backend (no GPU or driver needed), and reads what ``ptxas -v`` reports:

1. **Record** (a subprocess with ``TRITON_INTERPRET=1``): every op runs with backend="triton" on
   small CPU inputs, forward and backward, over the dtypes it takes on CUDA and the flag
   combinations dispatch produces, with widths that reach each launcher's largest block size;
   every launch is recorded (kernel, argument types, constexpr values, launch options).
2. **Compile** (a subprocess without the interpreter, whose kernels are plain ``@triton.jit``):
   each distinct specialisation through ``triton.compile(ASTSource(...), GPUTarget(...))``, then
   the wheel's ptxas on the PTX for registers, spills and shared memory, and a count of FMA
   contractions: the ``fma.rn`` instructions in the PTX beyond the explicit fused multiply-adds
   that the LLVM IR calls by name (``llvm.nvvm.fma.*``: the math library's own, e.g. inside a
   float64 ``exp``, which is CUDA's exp, the one eager torch calls too, or a ``tl.fma``); the
   explicit ones are counted apart.

It fails on a compile error, on a spill, on shared memory above the target's limit, and on an FMA
contraction in a kernel launched with ``enable_fp_fusion=False`` (the kernels that must round
like the reference). ``python -m sparsespike.compile_check`` runs the full matrix (``make gpu-compile``);
``--subset ci`` a fast part of it (the test suite runs that).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

ARCHS = (80, 90)
# the most dynamic shared memory one block may use (CUDA programming guide, compute capabilities)
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
_TORCH_TO_TRITON = {
    "torch.float32": "fp32",
    "torch.float64": "fp64",
    "torch.float16": "fp16",
    "torch.bfloat16": "bf16",
    "torch.bool": "i1",
    "torch.uint8": "u8",
    "torch.int8": "i8",
    "torch.int32": "i32",
    "torch.int64": "i64",
}
_FMA = re.compile(r"\bfma\.rn(?:\.ftz)?\.f(?:16|32|64)")
_EXPLICIT_FMA = re.compile(r"\bcall [^@\n]*@llvm\.(?:nvvm\.)?fma\.")  # an fma the IR asks for by name


@dataclass
class Spec:
    """One kernel specialisation, as a launch made it."""

    module: str  # the kernels/ module, e.g. "lif"
    kernel: str  # the @triton.jit function
    signature: dict[str, str]  # argument -> Triton type ("*fp32", "i32", "constexpr")
    constexprs: dict[str, Any]
    options: dict[str, Any]  # num_warps, num_stages, enable_fp_fusion as launched
    cases: list[str] = field(default_factory=list)  # the op calls that launched it

    def key(self) -> str:
        return json.dumps([self.module, self.kernel, self.signature, self.constexprs, self.options], sort_keys=True)

    def label(self) -> str:
        consts = ",".join(f"{k}={v}" for k, v in sorted(self.constexprs.items()))
        ptrs = ",".join(sorted({t[1:] for t in self.signature.values() if t.startswith("*")}))
        fusion = self.options.get("enable_fp_fusion", "default")
        return f"{ptrs} [{consts}] fusion={fusion}"


@dataclass
class Result:
    module: str
    kernel: str
    specialisation: str
    arch: int
    ok: bool
    error: str = ""
    registers: Optional[int] = None
    spill_bytes: Optional[int] = None
    shared_bytes: Optional[int] = None
    fma: Optional[int] = None  # contractions: PTX fma instructions beyond the IR's explicit ones
    fma_explicit: Optional[int] = None  # fma the IR calls by name (math library, tl.fma)
    exact: bool = False  # launched with enable_fp_fusion=False
    seconds: float = 0.0

    def problems(self) -> list[str]:
        if not self.ok:
            return [f"compile error: {self.error}"]
        found = []
        if self.spill_bytes:
            found.append(f"{self.spill_bytes} bytes spilled")
        if self.shared_bytes is not None and self.shared_bytes > SHARED_LIMIT[self.arch]:
            found.append(
                f"{self.shared_bytes} bytes of shared memory (sm_{self.arch} allows {SHARED_LIMIT[self.arch]})"
            )
        if self.exact and self.fma:
            found.append(f"{self.fma} FMA contractions in a kernel launched without FP fusion")
        return found


# --------------------------------------------------------------------------- the op calls


def _cases(subset: str) -> list[tuple[str, Callable[[], None]]]:
    """(label, call) for every op call the record phase makes; ``subset="ci"`` a fast part."""
    import torch

    import sparsespike as ss

    g = torch.Generator().manual_seed(0)

    def spikes(shape, dtype, density=0.2):
        s = torch.rand(shape, generator=g) < density
        return s if dtype == torch.bool else s.to(dtype)

    def run_linear(rows, n_in, n_out, w_dtype, s_dtype, bias):
        def call():
            w = torch.randn(n_out, n_in, generator=g).to(w_dtype).requires_grad_()
            b = torch.randn(n_out, generator=g).to(w_dtype).requires_grad_() if bias else None
            ss.spike_linear(spikes((rows, n_in), s_dtype), w, b, backend="triton").sum().backward()
            if s_dtype.is_floating_point:  # a spike input with a gradient: the masked input gradient
                x = spikes((rows, n_in), s_dtype).requires_grad_()
                mask = torch.rand(rows, n_in, generator=g) < 0.5
                ss.spike_linear(x, w, b, grad_mask=mask, backend="triton").sum().backward()

        return call

    def run_conv(c_in, c_out, size, w_dtype, bias, stride=1, padding=1):
        def call():
            w = torch.randn(c_out, c_in, 3, 3, generator=g).to(w_dtype).requires_grad_()
            b = torch.randn(c_out, generator=g).to(w_dtype) if bias else None
            x = spikes((2, c_in, size, size), w_dtype).requires_grad_()
            mask = torch.rand(x.shape, generator=g) < 0.5  # the masked input gradient
            for grad_mask in (None, mask):
                out = ss.spike_conv2d(x, w, b, stride=stride, padding=padding, grad_mask=grad_mask, backend="triton")
                out.sum().backward()

        return call

    def run_lif(dtype, convention, reset, surrogate, detach, decay):
        def call():
            x = torch.randn(3, 140, generator=g).to(dtype).requires_grad_()
            out = ss.lif(
                x,
                torch.full((140,), 0.9, dtype=dtype, requires_grad=True),
                1.0,
                convention=convention,
                reset=reset,
                surrogate=surrogate,
                detach_reset=detach,
                decay_input=decay,
                return_trace=True,
                backend="triton",
            )
            (out.spikes.sum() + out.membrane.sum() + out.trace.sum()).backward()

        return call

    def run_hgrn(dtype, with_final):
        def call():
            x = torch.randn(3, 140, generator=g).to(dtype).requires_grad_()
            gate = (-torch.rand(3, 140, generator=g)).to(dtype).requires_grad_()
            out = ss.hgrn_scan(x, gate, backend="triton")
            (out.h.sum() + (out.h_final.sum() if with_final else 0)).backward()

        return call

    def run_hopfield(dtype, n_q, n_k, dim):
        def call():
            q = torch.randn(n_q, dim, generator=g).to(dtype).requires_grad_()
            p = torch.randn(n_k, dim, generator=g).to(dtype).requires_grad_()
            ss.modern_hopfield(q, p, 0.5, backend="triton").float().sum().backward()

        return call

    def run_recall(dtype, reset):
        def call():
            patterns = torch.rand(3, 40, generator=g) < 0.5
            weight = ss.hebbian_weight(patterns, dtype=dtype)
            ss.spiking_hopfield_recall(weight, patterns[:2], steps=3, reset=reset, backend="triton")

        return call

    f32, f64, f16, bf16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
    ci = [
        ("spike_linear fp32 bool spikes, bias", run_linear(3, 40, 20, f32, torch.bool, True)),
        ("spike_linear fp32 float spikes, gradient mask", run_linear(3, 40, 20, f32, f32, False)),
        ("spike_conv2d fp32", run_conv(2, 4, 6, f32, True)),
        ("lif fp32 snntorch subtract", run_lif(f32, "snntorch", "subtract", "fast_sigmoid", True, True)),
        ("hgrn_scan fp32", run_hgrn(f32, True)),
        ("modern_hopfield fp32", run_hopfield(f32, 5, 7, 16)),
        ("spiking_hopfield_recall fp32", run_recall(f32, "subtract")),
    ]
    if subset == "ci":
        return ci
    cases = list(ci)
    for w in (f32, f64, f16, bf16):
        for s in (torch.bool, torch.uint8, w):
            for bias in (True, False):
                cases.append((f"spike_linear {w} weights, {s} spikes, bias={bias}", run_linear(3, 40, 20, w, s, bias)))
    # widths that reach the launchers' largest blocks (compaction 1024, gather 128)
    cases.append(("spike_linear fp32 wide (1100 -> 130)", run_linear(2, 1100, 130, f32, f32, True)))
    for w in (f32, f64, f16, bf16):
        for bias in (True, False):
            cases.append((f"spike_conv2d {w} bias={bias}", run_conv(2, 4, 6, w, bias)))
    cases.append(("spike_conv2d fp32 64 -> 130 channels, stride 2", run_conv(3, 130, 7, f32, True, stride=2)))
    for dtype in (f32, f64):
        for convention in ("snntorch", "spikingjelly"):
            for reset in ("subtract", "zero", "none"):
                for surrogate in ("fast_sigmoid", "atan", "sigmoid", "triangle"):
                    cases.append(
                        (
                            f"lif {dtype} {convention} {reset} {surrogate}",
                            run_lif(dtype, convention, reset, surrogate, True, True),
                        )
                    )
        cases.append(
            (f"lif {dtype} snntorch detach_reset=False", run_lif(dtype, "snntorch", "subtract", "atan", False, True))
        )
        cases.append(
            (f"lif {dtype} spikingjelly no decay_input", run_lif(dtype, "spikingjelly", "zero", "atan", True, False))
        )
        cases.append((f"hgrn_scan {dtype} without h_final grad", run_hgrn(dtype, False)))
        cases.append((f"hgrn_scan {dtype}", run_hgrn(dtype, True)))
        for reset in ("subtract", "zero", "none"):
            cases.append((f"spiking_hopfield_recall {dtype} {reset}", run_recall(dtype, reset)))
    for dtype in (f32, f16, bf16):
        cases.append((f"modern_hopfield {dtype}", run_hopfield(dtype, 5, 7, 16)))
        cases.append((f"modern_hopfield {dtype} 1000 patterns, d=130", run_hopfield(dtype, 3, 1000, 130)))
    cases.append(("modern_hopfield fp32 256 patterns, d=512 (the study's M3)", run_hopfield(f32, 4, 256, 512)))
    return cases


# --------------------------------------------------------------------------- record (interpreted)


def _triton_type(value) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return "*" + _TORCH_TO_TRITON[str(value.dtype)]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"cannot type a launch argument of {type(value).__name__}")


def _record(subset: str, only: str = "") -> list[Spec]:
    """Run the op calls (those whose label contains ``only``) under the interpreter and collect
    every distinct launch."""
    from triton.runtime.interpreter import InterpretedFunction

    specs: dict[str, Spec] = {}
    current = [""]
    run = InterpretedFunction.run

    def recording_run(self, *args, grid, warmup, **kwargs):
        fn = self.fn
        params = inspect.signature(fn).parameters
        bound = dict(zip(params, args))
        options = {k: kwargs.pop(k) for k in ("num_warps", "num_stages", "enable_fp_fusion") if k in kwargs}
        bound.update(kwargs)
        signature, constexprs = {}, {}
        for name, param in params.items():
            value = bound.get(name, param.default)
            if "constexpr" in str(param.annotation) or value is None:
                signature[name], constexprs[name] = "constexpr", value
            else:
                signature[name] = _triton_type(value)
        module = fn.__module__.rsplit(".", 1)[-1]
        spec = Spec(module, fn.__name__, signature, constexprs, options)
        specs.setdefault(spec.key(), spec).cases.append(current[0])
        return run(self, *args, grid=grid, warmup=warmup, **options, **kwargs)

    InterpretedFunction.run = recording_run
    try:
        for label, call in _cases(subset):
            if only not in label:
                continue
            current[0] = label
            call()
    finally:
        InterpretedFunction.run = run
    for spec in specs.values():
        spec.cases = sorted(set(spec.cases))
    return list(specs.values())


# --------------------------------------------------------------------------- compile (GPU backend)


def _ptxas(arch: int) -> str:
    """The ptxas that the compiling Triton itself runs for ``arch`` (its wheel's)."""
    from triton.backends import nvidia

    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return get_ptxas(arch).path
    except (ImportError, AttributeError, TypeError):  # a release without get_ptxas(arch)
        folder = Path(nvidia.__file__).parent / "bin"
        for name in ("ptxas", "ptxas-blackwell"):
            if (folder / name).exists():
                return str(folder / name)
        raise FileNotFoundError(f"no ptxas in {folder}") from None


def _ptxas_stats(ptx: str, arch: int, fusion: bool) -> tuple[int, int, int]:
    """(registers, spill bytes (stores + loads), static shared bytes) of the PTX's kernel, from
    ptxas with the flags Triton passes (``--fmad=false`` without fusion)."""
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        arch_name = f"sm_{arch}a" if arch == 90 else f"sm_{arch}"
        proc = subprocess.run(
            [
                _ptxas(arch),
                *([] if fusion else ["--fmad=false"]),
                "-v",
                f"--gpu-name={arch_name}",
                f.name,
                "-o",
                os.devnull,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(f.name)
    text = proc.stderr + proc.stdout
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    smem = re.search(r"(\d+) bytes smem", text)
    return (
        int(regs.group(1)) if regs else 0,
        int(spills.group(1)) + int(spills.group(2)) if spills else 0,
        int(smem.group(1)) if smem else 0,
    )


def _compile(spec: Spec, arch: int) -> Result:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from ._backend import _import_kernels

    result = Result(
        spec.module, spec.kernel, spec.label(), arch, ok=False, exact=spec.options.get("enable_fp_fusion") is False
    )
    start = time.perf_counter()
    try:
        fn = getattr(_import_kernels(spec.module), spec.kernel)
        source = ASTSource(fn=fn, signature=spec.signature, constexprs=spec.constexprs)
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(spec.options))
        ptx = compiled.asm["ptx"]
        result.registers, result.spill_bytes, static_smem = _ptxas_stats(
            ptx, arch, spec.options.get("enable_fp_fusion", True)
        )
        result.shared_bytes = max(static_smem, int(getattr(compiled.metadata, "shared", 0) or 0))
        result.fma_explicit = len(_EXPLICIT_FMA.findall(compiled.asm["llir"]))
        result.fma = max(0, len(_FMA.findall(ptx)) - result.fma_explicit)
        result.ok = True
    except Exception as exc:  # reported per specialisation; the run fails at the end
        result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    result.seconds = round(time.perf_counter() - start, 2)
    return result


# --------------------------------------------------------------------------- the two phases as processes


def _phase(args: list[str], interpret: bool, triton_path: Optional[Path] = None) -> None:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    if triton_path is not None:  # another Triton release, installed into a folder, ahead of the venv's
        env["PYTHONPATH"] = os.pathsep.join([str(triton_path.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    subprocess.run([sys.executable, "-m", "sparsespike.compile_check", *args], env=env, check=True)


def run(
    subset: str = "full",
    archs=ARCHS,
    out: Optional[Path] = None,
    triton_path: Optional[Path] = None,
    only: str = "",
) -> tuple[str, list[Result]]:
    """Record the launches, compile them for ``archs``: (the compiling Triton's version, the
    results), also written to ``out``.
    With ``triton_path`` the compile phase imports the Triton installed there (the device image's
    release); the launches are always recorded with this environment's interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        specs_file, results_file = Path(tmp) / "specs.json", Path(tmp) / "results.json"
        _phase(["--phase", "record", "--subset", subset, "--only", only, "--specs", str(specs_file)], interpret=True)
        archs_arg = ",".join(str(a) for a in archs)
        compile_args = ["--phase", "compile", "--archs", archs_arg, "--specs", str(specs_file)]
        _phase([*compile_args, "--json", str(results_file)], False, triton_path)
        compiled = json.loads(results_file.read_text())
    results = [Result(**r) for r in compiled["results"]]
    if out is not None:
        from datetime import datetime, timezone

        from .bench.stamp import commit

        stamp = {
            "triton": compiled["triton"],
            "commit": commit(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subset": subset + (f", only {only!r}" if only else ""),
        }
        out.write_text(json.dumps({**stamp, "results": compiled["results"]}, indent=1))
    return compiled["triton"], results


def table(results: list[Result]) -> str:
    rows = [
        "| kernel | specialisation | sm | regs | spill B | smem B | fma contracted | fma explicit | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.module, r.kernel, r.specialisation, r.arch)):
        status = "; ".join(r.problems()) or "ok"
        rows.append(
            f"| {r.module}.{r.kernel} | {r.specialisation} | {r.arch} | {r.registers} | {r.spill_bytes} | "
            f"{r.shared_bytes} | {r.fma} | {r.fma_explicit} | {status} |"
        )
    return "\n".join(rows)


def summary(results: list[Result]) -> str:
    """One row per kernel and target: specialisations, the most registers and shared memory, the
    spilled bytes, the range of FMA counts, failures."""
    groups: dict[tuple, list[Result]] = {}
    for r in results:
        groups.setdefault((r.module, r.kernel, r.arch), []).append(r)

    def span(values) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        return str(min(values)) if min(values) == max(values) else f"{min(values)}-{max(values)}"

    rows = [
        "| kernel | sm | fusion | specialisations | max regs | spill B | max smem B | fma contracted | fma explicit | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (module, kernel, arch), group in sorted(groups.items()):
        fusion = "off" if all(r.exact for r in group) else "on"
        rows.append(
            f"| {module}.{kernel} | {arch} | {fusion} | {len(group)} | {max(r.registers or 0 for r in group)} | "
            f"{sum(r.spill_bytes or 0 for r in group)} | {max(r.shared_bytes or 0 for r in group)} | "
            f"{span(r.fma for r in group)} | {span(r.fma_explicit for r in group)} | "
            f"{sum(1 for r in group if r.problems())} |"
        )
    return "\n".join(rows)


def render(folder: Path) -> str:
    """The compile-check page from the result files (``--json``) in ``folder``."""
    runs = [(path, json.loads(path.read_text())) for path in sorted(Path(folder).glob("*.json"))]
    if not runs:
        raise SystemExit(f"--report {folder}: no compile-check JSON there")
    out = [
        "# Triton kernels compiled for GPUs",
        "",
        f"Generated by `python -m sparsespike.compile_check --report {folder}` (`make docs`) from the result "
        "files there (`make gpu-compile` writes them); do not edit by hand. What is checked and why: "
        "[kernels.md](kernels.md#proving-the-gpu-kernels-without-a-gpu). fusion off: launched with "
        "`enable_fp_fusion=False`; fma contracted: FMA instructions the compiler made from a multiply and an "
        "add; fma explicit: those the code asks for by name (the math library's, e.g. float64 `exp`).",
    ]
    for path, run in runs:
        results = [Result(**r) for r in run["results"]]
        failed = sum(1 for r in results if r.problems())
        out += [
            "",
            f"## triton {run['triton']}: {len(results)} compilations, {failed} failed",
            "",
            f"`{path.name}`: sparsespike {run.get('commit', 'unknown')}, {run.get('date', 'unknown')}, "
            f"subset {run.get('subset', 'unknown')}.",
            "",
            summary(results),
            "",
            "<details><summary>every specialisation</summary>",
            "",
            table(results),
            "",
            "</details>",
        ]
    return "\n".join(out) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sparsespike.compile_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", choices=("full", "ci"), default="full", help="every specialisation, or a fast part")
    p.add_argument("--only", default="", metavar="TEXT", help="only the op calls whose label contains TEXT")
    p.add_argument("--archs", default=",".join(str(a) for a in ARCHS), help="compute capabilities, e.g. 80,90")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument(
        "--compile-triton",
        type=Path,
        metavar="DIR",
        help="compile with the Triton installed in DIR (pip install --target DIR triton==X), e.g. the device's",
    )
    p.add_argument("--report", type=Path, metavar="DIR", help="render the result files in DIR (with --out) and exit")
    p.add_argument("--out", type=Path, help="where --report writes its Markdown")
    p.add_argument("--phase", choices=("record", "compile"), help=argparse.SUPPRESS)
    p.add_argument("--specs", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    archs = [int(a) for a in args.archs.split(",") if a]
    if args.report is not None:
        if args.out is None:
            p.error("--report needs --out")
        args.out.write_text(render(args.report))
        print(f"wrote {args.out} from {args.report}")
        return 0
    if args.phase == "record":
        args.specs.write_text(json.dumps([asdict(s) for s in _record(args.subset, args.only)]))
        return 0
    if args.phase == "compile":
        specs = [Spec(**s) for s in json.loads(args.specs.read_text())]
        results = []
        for i, spec in enumerate(specs):
            for arch in archs:
                results.append(_compile(spec, arch))
                print(
                    f"[{len(results)}/{len(specs) * len(archs)}] {spec.module}.{spec.kernel} sm_{arch}", file=sys.stderr
                )
        import triton

        args.json.write_text(json.dumps({"triton": triton.__version__, "results": [asdict(r) for r in results]}))
        return 0
    start = time.perf_counter()
    version, results = run(args.subset, archs, args.json, args.compile_triton, args.only)
    print(f"triton {version}, {len(results)} compilations in {time.perf_counter() - start:.0f} s\n")
    print(table(results))
    failed = [r for r in results if r.problems()]
    if failed:
        print(f"\n{len(failed)} of {len(results)} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
