"""models suite: the study's models at controlled activation density (M1 audio and visual over
10-1%, M2-M5 audio at 3% and 1.5%; study sizes), inference and one training step, on the fused
backends (auto), the reference backend (plain torch, multi-step) and the step-by-step eager
baseline (sparsespike.bench.eager, the study's code style, memories included), timed in
interleaved rounds with the same weights and input.

Density control: the input is Bernoulli spikes at the target density, and each hidden layer's
weights are scaled (sparsespike.models.calibration) until it fires at the target rate on that
input; the measured per-layer densities are reported. A training step is forward, cross-entropy
(plus the supervised contrastive term for M2 and M5), backward and an AdamW step with lr 0 (fused,
as the training CLI runs it, for every backend): every backend does the optimizer's full
arithmetic, and the weights, hence the densities, stay as calibrated across repeats.

Surrogate axis: the train step also runs on the fused backend with the surrogate truncated to two
band widths and with the triangle (same weights and input), where each spike layer computes its
input gradient only at the band-active entries of the LIF below; its rows carry the surrogate's
name and the measured band-active fraction of every layer.

Peak memory: the peak of the tensor memory allocated during one call and still alive (activations,
saved tensors, gradients), beyond what existed before it: on CUDA from the allocator's statistics,
on CPU by tracking every storage the dispatched ops create until it is freed (the C++ kernels'
internal scratch buffers are not tensors and are not counted).
Per-layer time: forward wall time per synaptic layer and LIF of the auto backend's inference.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..ops.supcon_loss import supcon_loss
from ..synops import count_synops
from ..training.optim import adamw
from .timing import Progress, markdown_table, median_ms_interleaved, sync

MODES = ("inference", "train")
DENSITIES = (0.10, 0.05, 0.03, 0.015, 0.01)
QUICK_DENSITIES = (0.05, 0.015)
# (model, modality, model options, batch, densities or None for all): the study's sizes; visual
# at batch 8, since its step-by-step baseline computes 75.8M-weight dense layers at every step;
# M2-M5 at the study's densities (3% and 1.5%) on audio
CASES = (
    ("m1", "audio", {}, 32, None),
    ("m1", "visual", {}, 8, None),
    *((m, "audio", {}, 32, (0.03, 0.015)) for m in ("m2", "m3", "m4", "m5")),
)
_QUICK_AUDIO = {"hidden_sizes": (128, 128), "feature_size": 64}
QUICK_CASES = (
    ("m1", "audio", _QUICK_AUDIO, 8, None),
    ("m1", "visual", {"hidden_sizes": (4, 8), "feature_size": 32}, 4, None),
    ("m4", "audio", _QUICK_AUDIO, 8, (0.05,)),
)
BREAKDOWN_DENSITY = 0.03  # the per-layer table is printed at the swept density nearest to this
STEPS = {"audio": 100, "visual": 25}  # time steps of a sample, as the study's datasets have them
EXACT = "exact"  # the study's fast sigmoid, slope 25
# the train step's surrogate axis beyond the exact one: (label, model options)
SURROGATE_AXIS = (
    ("band 0.05", {"grad_band": 0.05}),
    ("band 0.2", {"grad_band": 0.2}),
    ("triangle", {"surrogate": "triangle"}),
)


@dataclass
class Point:
    model: str
    modality: str
    mode: str
    target_density: float
    backend: str
    batch: int
    ms: float
    samples_per_s: float
    hidden_density: float  # mean over the hidden spiking layers, measured
    synops_per_sample: float  # counted by the kernels (auto, inference)
    peak_mb: float
    speedup_vs_eager: float = float("nan")
    speedup_vs_reference: float = float("nan")
    layer_density: dict = field(default_factory=dict)
    layer_ms: dict = field(default_factory=dict)  # auto inference only
    surrogate: str = EXACT
    band_active: dict = field(default_factory=dict)  # per LIF, in the last timed step (compact support)


def _input(modality: str, model: nn.Module, batch: int, density: float, generator: torch.Generator) -> torch.Tensor:
    shape = (batch, STEPS[modality], *model.encoder.input_shape)
    return (torch.rand(shape, generator=generator) < density).float()


def _spiking_densities(model: nn.Module, run: Callable[[], object]) -> dict[str, float]:
    from ..models.calibration import spiking_layers

    rates: dict[str, float] = {}
    _run_hooked(
        [
            lif.register_forward_hook(lambda m, i, o, n=name: rates.__setitem__(n, float(o.float().mean())))
            for name, _, lif in spiking_layers(model)
        ],
        run,
    )
    return rates


def _run_hooked(handles: list, run: Callable[[], object]) -> None:
    """run() without gradients while the hooks are installed, then remove them."""
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()


def _layer_times(model: nn.Module, run: Callable[[], object], device: torch.device) -> dict[str, float]:
    """Forward wall time (ms) per synaptic layer and LIF, from pre/post hooks."""
    from ..nn import LIF

    times: dict[str, float] = {}
    starts: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, LIF)):

            def pre(m, args, n=name):
                sync(device)
                starts[n] = time.perf_counter()

            def post(m, args, out, n=name):
                sync(device)
                times[n] = times.get(n, 0.0) + (time.perf_counter() - starts[n]) * 1e3

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    _run_hooked(handles, run)
    return times


class _LiveTensorBytes(TorchDispatchMode):
    """Bytes of the tensor storages created by dispatched ops and still alive, and their peak.
    Storages keep one Python object for their lifetime, so a finalizer on it sees the free."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: set[int] = set()

    def _release(self, key: int, size: int) -> None:
        self._seen.discard(key)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # outputs that share an input's storage (views, in-place results) allocated nothing
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self._seen and key not in inputs and storage.nbytes():
                    self._seen.add(key)
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._release, key, storage.nbytes())
        return out


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory of one call of fn beyond what existed before it (see the module docstring)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    with _LiveTensorBytes() as tracker:
        fn()
    return tracker.peak / 2**20


def _contenders(name: str, modality: str, options: dict, batch: int, density: float, device: torch.device):
    """The implementations (auto, reference, and the eager baseline for M1-M5) with
    the same calibrated weights; each gives () -> (logits, features). Also the input and labels."""
    from ..models import build_model
    from ..models.calibration import calibrate_firing
    from .eager import EAGER_MODELS, eager_model

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    fused = build_model(name, modality, backend="auto", **options).to(device)
    x = _input(modality, fused, batch, density, generator).to(device)
    labels = torch.randint(0, fused.num_classes, (batch,), generator=generator).to(device)
    calibrate_firing(fused, lambda: fused(x), hidden_rate=density)
    reference = build_model(name, modality, backend="reference", **options).to(device)
    reference.load_state_dict(fused.state_dict())
    outputs = {"auto": lambda: tuple(fused(x))[:2], "reference": lambda: tuple(reference(x))[:2]}
    owners = {"auto": fused, "reference": reference}
    if name in EAGER_MODELS:
        eager = eager_model(fused)
        outputs["eager"], owners["eager"] = (lambda: eager(x)), fused
    for label, surrogate in SURROGATE_AXIS:  # train mode only (the forward is the same)
        variant = build_model(name, modality, backend="auto", **options, **surrogate).to(device)
        variant.load_state_dict(fused.state_dict())
        outputs[_variant_key(label)] = lambda m=variant: tuple(m(x))[:2]
        owners[_variant_key(label)] = variant
    return fused, x, labels, outputs, owners


def _variant_key(label: str) -> str:
    return f"auto|{label}"


def _backend_and_surrogate(key: str) -> tuple[str, str]:
    backend, _, surrogate = key.partition("|")
    return backend, surrogate or EXACT


def _band_fractions(model: nn.Module) -> dict[str, float]:
    """The band-active fraction per LIF that recorded one in the model's last training step."""
    return {
        name: float(m.band_fraction)
        for name, m in model.named_modules()
        if getattr(m, "band_fraction", None) is not None
    }


def _callables(outputs: dict, owners: dict, labels: torch.Tensor, mode: str) -> dict[str, Callable[[], object]]:
    """Per backend, one inference call or one train step (CE, plus the model's SCL term)."""
    if mode == "inference":

        def infer(f):
            def call():
                with torch.no_grad():
                    return f()

            return call

        return {b: infer(f) for b, f in outputs.items() if "|" not in b}
    fns = {}
    for backend, f in outputs.items():
        model = owners[backend]
        optimizer = adamw(model.parameters(), lr=0.0)  # full arithmetic, weights unchanged
        scl = float(getattr(model, "supcon_weight", 0.0))

        def step(f=f, optimizer=optimizer, scl=scl, temperature=getattr(model, "supcon_temperature", 0.07)):
            optimizer.zero_grad(set_to_none=True)
            logits, features = f()
            loss = F.cross_entropy(logits, labels)
            if scl > 0:
                loss = loss + scl * supcon_loss(features, labels, temperature)
            loss.backward()
            optimizer.step()

        fns[backend] = step
    return fns


def run(
    device: torch.device,
    quick: bool = False,
    repeats=None,
    progress: bool = True,
    models=None,
    modalities=None,
    cases=None,
) -> list[Point]:
    """models / modalities: run only these cases (None: all); cases: other cases than CASES
    (QUICK_CASES when quick), in their format."""
    repeats = repeats or (2 if quick else 3)
    swept = QUICK_DENSITIES if quick else DENSITIES
    cases = cases if cases is not None else (QUICK_CASES if quick else CASES)
    cases = [c for c in cases if (models is None or c[0] in models) and (modalities is None or c[1] in modalities)]
    bar = Progress(sum(len(d or swept) for *_, d in cases) * len(MODES), enabled=progress)
    points = []
    for name, modality, options, batch, densities in cases:
        for density in densities or swept:
            fused, x, labels, outputs, owners = _contenders(name, modality, options, batch, density, device)
            layer_density = _spiking_densities(fused, lambda: fused(x))
            hidden = [v for k, v in layer_density.items() if not k.startswith("head.")]
            with count_synops() as counter, torch.no_grad():
                fused(x)
            per_sample = float(counter.total()) / batch
            layer_ms = _layer_times(fused, lambda: fused(x), device)
            for mode in MODES:
                bar.step(f"{name} {modality} {mode} density {density}")
                fns = _callables(outputs, owners, labels, mode)
                ms = median_ms_interleaved(fns, device, repeats, warmup=1)
                group = []
                for key in fns:
                    backend, surrogate = _backend_and_surrogate(key)
                    group.append(
                        Point(
                            name,
                            modality,
                            mode,
                            density,
                            backend,
                            batch,
                            ms[key],
                            batch / ms[key] * 1e3,
                            sum(hidden) / len(hidden),
                            per_sample,
                            peak_memory_mb(fns[key], device),
                            layer_density=layer_density,
                            layer_ms=layer_ms if key == "auto" and mode == "inference" else {},
                            surrogate=surrogate,
                            band_active=_band_fractions(owners[key]) if surrogate != EXACT else {},
                        )
                    )
                for p in group:
                    p.speedup_vs_eager = ms.get("eager", float("nan")) / p.ms
                    p.speedup_vs_reference = ms["reference"] / p.ms
                points += group
    return points


def table(points: list[Point]) -> str:
    headers = [
        "model",
        "modality",
        "mode",
        "target density",
        "hidden density",
        "backend",
        "surrogate",
        "band active %",
        "batch",
        "ms",
        "samples/s",
        "x eager",
        "x reference",
        "peak MB",
        "SynOps/sample",
    ]
    rows = [
        [
            p.model,
            p.modality,
            p.mode,
            p.target_density,
            p.hidden_density,
            p.backend,
            p.surrogate,
            band_range(p.band_active),
            p.batch,
            p.ms,
            p.samples_per_s,
            p.speedup_vs_eager,
            p.speedup_vs_reference,
            p.peak_mb,
            f"{p.synops_per_sample:,.0f}",
        ]
        for p in points
    ]
    text = markdown_table(headers, rows)
    for case in dict.fromkeys((p.model, p.modality) for p in points):
        case_points = [p for p in points if (p.model, p.modality) == case and p.layer_ms]
        if not case_points:
            continue
        chosen = min(case_points, key=lambda p: abs(p.target_density - BREAKDOWN_DENSITY))
        total = sum(chosen.layer_ms.values())
        text += (
            f"\n\nper-layer forward time, {case[0]} {case[1]}, auto, inference, density {chosen.target_density} "
            f"(ms of {chosen.ms:.1f} ms a batch):\n\n"
        )
        text += markdown_table(
            ["layer", "ms", "share", "output density"],
            [
                [n, v, v / total if total else float("nan"), chosen.layer_density.get(n, float("nan"))]
                for n, v in chosen.layer_ms.items()
            ],
        )
    return text


def band_range(band_active: dict) -> str:
    """The smallest and largest layer's band-active fraction, "1.2-9.7" (%), or "-"."""
    if not band_active:
        return "-"
    low, high = min(band_active.values()), max(band_active.values())
    return f"{100 * low:.1f}-{100 * high:.1f}"


def as_json(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]


def profile_train_step(device: torch.device, path, quick: bool = False) -> str:
    """Write a torch.profiler (Chrome) trace of one auto train step of the first case at 3%
    density to ``path``; returns the top operators by self time as a table."""
    import os
    from pathlib import Path

    from torch.profiler import ProfilerActivity, profile

    name, modality, options, batch, _ = (QUICK_CASES if quick else CASES)[0]
    _, _, labels, outputs, owners = _contenders(name, modality, options, batch, BREAKDOWN_DENSITY, device)
    step = _callables(outputs, owners, labels, "train")["auto"]
    step()  # warm-up: weight caches, allocator
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        step()
        sync(device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    prof.export_chrome_trace(str(partial))
    os.replace(partial, path)  # a reader never sees half a trace
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
