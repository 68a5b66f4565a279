"""python -m sparsespike.bench.gpu_parts {bandwidth,calibrate,baselines} --device cpu|cuda --json PATH [--repeats N] [--tiny]

The parts of the GPU check (sparsespike.bench.gpu_check) that the bench CLI has no suite for, each
run in its own process so that the driver can stop it at its budget. Each prints a Markdown table
on stdout and writes its measurements as JSON (--json, rewritten as results come in).

- bandwidth: the fused LIF forward's achieved bandwidth (the bytes it must move: read the
  current, write the spikes and the final membrane, over its median time) against the device's
  copy bandwidth (Tensor.copy_ of a tensor of the current's size: 2 x bytes over its median time),
  timed in the same interleaved rounds.
- calibrate: the dense / event-driven dispatch crossover (sparsespike.bench.spike_linear.calibrate,
  what ``python -m sparsespike.bench --calibrate`` measures), with the SPARSESPIKE_CROSSOVER line
  that applies it.
- baselines: the study's M1 audio network (batch 32 x 100 steps, hidden layers calibrated to fire
  at 3%) on the fused backend (auto) against snnTorch (snn.Leaky stepped in a Python loop, as the
  study's reference code) and SpikingJelly (multi-step LIFNode, tau = 1 / (1 - beta), subtract
  reset), with the same weights and input: one inference call and one training step (forward,
  cross-entropy, backward, AdamW with lr 0). A library that does not import is reported as such.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn

from .._atomic import atomic_write
from .timing import markdown_table, median_ms_interleaved

PROG = "python -m sparsespike.bench.gpu_parts"
PARTS = ("bandwidth", "calibrate", "baselines")

# [T, B, N]: the study's SHD hidden layer, the N-MNIST conv layer, and one large enough (420 MB)
# that a GPU's caches do not flatter it
BANDWIDTH_SHAPES = ((100, 32, 1024), (25, 8, 128 * 34 * 34), (100, 64, 16384))
TINY_BANDWIDTH_SHAPES = ((100, 32, 1024),)
BASELINE_DENSITY = 0.03
BASELINE_CASE = ({}, 32)  # model options, batch: the study's M1 audio
TINY_BASELINE_CASE = ({"hidden_sizes": (128, 128), "feature_size": 64}, 8)


def _write(path: str, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2).encode())


def _kernel(device: torch.device) -> str:
    return "cpp" if device.type == "cpu" else "triton"


def bandwidth(device: torch.device, repeats: int, tiny: bool, json_path: str) -> dict:
    from ..ops.lif import lif

    kernel = _kernel(device)
    rows = []
    report = {"part": "bandwidth", "device": str(device), "kernel": kernel, "points": rows}
    for shape in TINY_BANDWIDTH_SHAPES if tiny else BANDWIDTH_SHAPES:
        g = torch.Generator().manual_seed(0)
        current = (torch.randn(shape, generator=g) * 0.6 + 0.3).to(device)
        target = torch.empty_like(current)
        size = current.element_size()
        moved = 2 * current.numel() * size + current[0].numel() * size  # current in; spikes, final membrane out

        def forward(backend):
            def run():
                with torch.no_grad():
                    lif(current, 0.9, 1.0, backend=backend)

            return run

        ms = median_ms_interleaved(
            {f"lif-{kernel}": forward(kernel), "lif-auto": forward("auto"), "copy": lambda: target.copy_(current)},
            device,
            repeats,
            warmup=2,
        )
        copy_gbps = 2 * current.numel() * size / ms["copy"] / 1e6
        for name in (f"lif-{kernel}", "lif-auto"):
            gbps = moved / ms[name] / 1e6
            rows.append(
                {
                    "shape": "x".join(map(str, shape)),
                    "backend": name,
                    "bytes_moved": moved,
                    "ms": ms[name],
                    "gb_per_s": gbps,
                    "copy_ms": ms["copy"],
                    "copy_gb_per_s": copy_gbps,
                    "share_of_copy": gbps / copy_gbps,
                }
            )
        _write(json_path, report)
    print(f"## fused LIF forward bandwidth ({device})\n")
    print(
        markdown_table(
            ["shape", "backend", "MB moved", "ms", "GB/s", "copy GB/s", "share of copy"],
            [
                [r["shape"], r["backend"], r["bytes_moved"] / 1e6, r["ms"], r["gb_per_s"], r["copy_gb_per_s"]]
                + [r["share_of_copy"]]
                for r in rows
            ],
        )
    )
    return report


def calibrate(device: torch.device, repeats: int, tiny: bool, json_path: str) -> dict:
    from .. import dispatch
    from .spike_linear import CALIBRATION_SHAPE
    from .spike_linear import calibrate as measure

    crossover = measure(device, repeats=repeats, progress=True)
    current = dispatch.get_crossover(device.type)
    apply = {
        device.type: {
            "forward_density": round(crossover["forward_density"], 4),
            "backward_density": round(crossover["backward_density"], 4),
        }
    }
    report = {
        "part": "calibrate",
        "device": str(device),
        "shape": list(CALIBRATION_SHAPE),
        "crossover": crossover,
        "in_use": {"forward_density": current.forward_density, "backward_density": current.backward_density},
        "apply": f"SPARSESPIKE_CROSSOVER='{json.dumps(apply)}'",
    }
    _write(json_path, report)
    rows, in_f, out_f = CALIBRATION_SHAPE
    print(f"## dispatch crossover ({rows} x {in_f} -> {out_f}, {device})\n")
    print(
        markdown_table(
            ["density", "forward x dense", "weight grad x dense"],
            [[m["density"], m["forward_speedup"], m["weight_grad_speedup"]] for m in crossover["measured"]],
        )
    )
    print(
        f"\nmeasured: forward_density={crossover['forward_density']:.3f} "
        f"backward_density={crossover['backward_density']:.3f} "
        f"(in use: {current.forward_density}, {current.backward_density})\napply with: {report['apply']}"
    )
    return report


class SnnTorchM1Audio(nn.Module):
    """M1 audio in snnTorch, one time step at a time (snn.Leaky with init_hidden, as the
    study's reference code): forward(x [B, T, F]) -> (output spike counts, feature rates)."""

    def __init__(self, snn, surrogate, layers, constants):
        super().__init__()
        self.fcs = nn.ModuleList(layers)
        self.lifs = nn.ModuleList(
            snn.Leaky(
                beta=beta,
                threshold=threshold,
                spike_grad=surrogate.fast_sigmoid(slope=slope),
                init_hidden=True,
                output=i == len(layers) - 1,
            )
            for i, (beta, threshold, slope) in enumerate(constants)
        )

    def forward(self, x):
        for lif in self.lifs:
            lif.reset_mem()
        counts, features = 0, 0
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                h = lif(fc(h))
                if i == len(self.fcs) - 1:
                    h = h[0]  # the output layer returns (spikes, membrane)
                elif i == len(self.fcs) - 2:
                    features = features + h
            counts = counts + h
        return counts, features / x.shape[1]


class SpikingJellyM1Audio(nn.Module):
    """M1 audio in SpikingJelly's multi-step mode: each layer's Linear over all steps at once,
    then LIFNode(step_mode='m') over time; forward(x [B, T, F]) -> (counts, feature rates)."""

    def __init__(self, neuron, surrogate, functional, layers, constants):
        super().__init__()
        self.functional = functional
        self.fcs = nn.ModuleList(layers)
        self.lifs = nn.ModuleList(
            # v = beta v + x, subtract reset: SpikingJelly's LIFNode with tau = 1 / (1 - beta),
            # no input decay and v_reset None (it fires on >= and resets within the step)
            neuron.LIFNode(
                tau=1.0 / (1.0 - beta),
                decay_input=False,
                v_threshold=threshold,
                v_reset=None,
                surrogate_function=surrogate.ATan(),
                detach_reset=True,
                step_mode="m",
            )
            for beta, threshold, _ in constants
        )

    def forward(self, x):
        self.functional.reset_net(self)
        h = x.transpose(0, 1)  # [T, B, F]
        features = None
        for i, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
            h = lif(fc(h))
            if i == len(self.fcs) - 2:
                features = h.mean(0)
        return h.sum(0), features


def _clone_linear(layer: nn.Module) -> nn.Linear:
    copy = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        copy.weight.copy_(layer.weight)
        if layer.bias is not None:
            copy.bias.copy_(layer.bias)
    return copy.to(layer.weight.device)


def _third_party(fused: nn.Module) -> tuple[dict, dict]:
    """name -> module (same weights as ``fused``), name -> why it is missing."""
    from .eager import _lif_constants, m1_layers

    layers = m1_layers(fused)
    constants = [_lif_constants(lif) for _, lif, _ in layers]
    modules, missing = {}, {}
    try:
        import snntorch
        import snntorch.surrogate

        modules["snntorch"] = SnnTorchM1Audio(
            snntorch, snntorch.surrogate, [_clone_linear(f) for f, *_ in layers], constants
        )
    except Exception as exc:  # not installed, or an API it does not have
        missing["snntorch"] = f"{type(exc).__name__}: {exc}"
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate

        modules["spikingjelly"] = SpikingJellyM1Audio(
            neuron, surrogate, functional, [_clone_linear(f) for f, *_ in layers], constants
        )
    except Exception as exc:
        missing["spikingjelly"] = f"{type(exc).__name__}: {exc}"
    return modules, missing


def baselines(device: torch.device, repeats: int, tiny: bool, json_path: str) -> dict:
    from . import models as models_suite

    options, batch = TINY_BASELINE_CASE if tiny else BASELINE_CASE
    fused, x, labels, outputs, owners = models_suite._contenders(
        "m1", "audio", options, batch, BASELINE_DENSITY, device
    )
    outputs = {"auto": outputs["auto"]}
    owners = {"auto": owners["auto"]}
    modules, missing = _third_party(fused)
    versions = {}
    for name, module in modules.items():
        module.to(device)
        outputs[name] = lambda m=module: tuple(m(x))
        owners[name] = module
        versions[name] = getattr(sys.modules.get(name), "__version__", None)
    densities = {}
    with torch.no_grad():
        for name, fn in outputs.items():
            densities[name] = float(fn()[1].float().mean())  # the feature layer's firing rate
    report = {
        "part": "baselines",
        "device": str(device),
        "model": "m1 audio",
        "options": options,
        "batch": batch,
        "steps": x.shape[1],
        "target_density": BASELINE_DENSITY,
        "feature_density": densities,
        "versions": versions,
        "missing": missing,
        "points": [],
    }
    for mode in models_suite.MODES:
        ms = median_ms_interleaved(models_suite._callables(outputs, owners, labels, mode), device, repeats, warmup=1)
        for name, value in ms.items():
            report["points"].append(
                {"mode": mode, "backend": name, "ms": value, "samples_per_s": batch / value * 1e3}
                | {"x_vs_auto": ms["auto"] / value, "auto_speedup": value / ms["auto"]}
            )
        _write(json_path, report)
    _write(json_path, report)
    print(f"## M1 audio (batch {batch} x {x.shape[1]} steps, {BASELINE_DENSITY:.0%}) vs snnTorch and SpikingJelly\n")
    print(
        markdown_table(
            ["mode", "backend", "ms", "samples/s", "auto's speed-up", "feature density"],
            [
                [p["mode"], p["backend"], p["ms"], p["samples_per_s"], p["auto_speedup"], densities[p["backend"]]]
                for p in report["points"]
            ],
        )
    )
    for name, why in missing.items():
        print(f"\n{name}: not measured ({why})")
    return report


RUNNERS = {"bandwidth": bandwidth, "calibrate": calibrate, "baselines": baselines}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1])
    p.add_argument("part", choices=PARTS)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--json", required=True, metavar="PATH")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--tiny", action="store_true", help="small shapes, for a CPU run")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"{PROG}: --device cuda: no CUDA device", file=sys.stderr)
        return 2
    start = time.perf_counter()
    RUNNERS[args.part](torch.device(args.device), max(1, args.repeats), args.tiny, args.json)
    print(f"\n{args.part}: {time.perf_counter() - start:.1f} s; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
