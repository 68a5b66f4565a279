"""The study end to end: for each seed, train every (model, modality) run and each model that
takes both modalities (the joint model), then meter each trained model's energy on the test split;
the first seed's models also give their rate-coded features for the engram analysis. Results go
into <out>/results.json after every run, so an interrupted study resumes where it stopped (each
training run resumes from its own last.pt)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .._atomic import atomic_write, remove_partial_writes
from ..analysis import collect_features, dataset_labels, save_features
from ..data import dataset_info, load_dataset
from ..energy import PROFILES, measure_energy
from ..training import TrainConfig, fit, load_trained
from .plan import StudyConfig, run_key, run_modalities
from .report import write_report

RESULTS = "results.json"


def _device(config: StudyConfig) -> str:
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} requested but torch sees no CUDA device")
    return config.device


def _preflight(config: StudyConfig, runs: list[tuple[str, str]]) -> None:
    """Open every split the runs use and check that a batch fits each training set, so that a
    missing or corrupt file, or a batch size too large, stops the study before its first run
    trains rather than hours later."""
    modalities = sorted({m for _, run in runs for m in run_modalities(run)})
    for modality in modalities:
        name = config.dataset_for(modality)
        for split in dataset_info(name).splits:
            data = load_dataset(
                name, split, data_dir=config.data_dir, cache_dir=config.cache_dir, download=config.download
            )
            train = min(len(data), config.limit_train or len(data))
            if split == "train" and train < config.batch_size:
                raise ValueError(
                    f"batch_size (--batch-size) {config.batch_size} is larger than the training set "
                    f"of {name} ({train} samples): a run would train nothing"
                )


def _train(config: StudyConfig, model: str, modality: str, seed: int, out: Path, device: str, log) -> dict[str, Any]:
    train_config = TrainConfig(
        model=model,
        dataset=config.dataset_for(modality),
        data_dir=config.data_dir,
        cache_dir=config.cache_dir,
        download=config.download,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        limit_train=config.limit_train,
        limit_eval=config.limit_eval,
        seed=seed,
        device=device,
        backend=config.backend,
        memory=config.memory_for(model),
        surrogate=config.surrogate,
        surrogate_param=config.surrogate_param,
        grad_band=config.grad_band,
        activity_target=config.activity_target,
        activity_weight=config.activity_weight,
        readout=config.readout,
        out=str(out),
        resume=True,
        progress=config.progress,
        model_options=config.model_options(modality),
        **config.calibration(modality),
    )
    started = time.perf_counter()
    summary = fit(train_config)
    history = summary["history"]
    last = history[-1] if history else {}
    result = {
        "model": model,
        "modality": modality,
        "seed": seed,
        "best_eval_acc": summary["best_eval_acc"],
        "best_epoch": summary["best_epoch"],
        "epochs": summary["epochs"],
        "stopped_early": summary["stopped_early"],
        "train_seconds": sum(row.get("train_seconds", 0.0) for row in history),
        "wall_seconds": time.perf_counter() - started,
        "parameters": sum(p.numel() for p in summary["model"].parameters()),
        "train_samples_per_second": last.get("train_samples_per_second"),
    }
    if len(run_modalities(modality)) > 1:  # per-modality accuracy of the best epoch
        best = history[summary["best_epoch"] - 1] if summary["best_epoch"] > 0 else last
        result["best_eval_acc_by_modality"] = {m: best.get(f"eval_{m}_acc") for m in run_modalities(modality)}
    log(f"  best eval accuracy {summary['best_eval_acc']:.2f}% (epoch {summary['best_epoch']} of {summary['epochs']})")
    return result


def _test_set(config: StudyConfig, modality: str):
    name = config.dataset_for(modality)
    return load_dataset(name, "test", data_dir=config.data_dir, cache_dir=config.cache_dir, download=config.download)


def _measure(
    config: StudyConfig,
    model_name: str,
    checkpoint: Path,
    modalities: list[str],
    device: str,
    features_dir: Optional[Path],
    log,
) -> dict[str, Any]:
    """Energy of a trained model on each modality's test split, and its engram features there
    unless ``features_dir`` is None."""
    started = time.perf_counter()
    model, _ = load_trained(checkpoint, device=device, backend=config.backend)
    measured: dict[str, Any] = {"energy": {}, "features": {}}
    for modality in modalities:
        data = _test_set(config, modality)
        loader = torch.utils.data.DataLoader(data, batch_size=config.batch_size, shuffle=False)
        report = measure_energy(
            model,
            loader,
            modality,
            max_samples=config.energy_samples,
            device=device,
            model_name=model_name,
            dataset_name=config.dataset_for(modality),
            progress=config.progress,
        )
        measured["energy"][modality] = report.as_dict(list(PROFILES))
        ratio = report.per_inference(real_input="mac")["ratio"]
        log(
            f"  {modality}: {report.samples} test samples metered, activation sparsity "
            f"{100 * report.activation_sparsity:.2f}%, ANN/SNN energy {ratio:.1f}x"
        )
        if features_dir is None:
            continue
        # a small test split may hold fewer samples of some class than asked for
        per_class = min(config.per_class, int(np.unique(dataset_labels(data), return_counts=True)[1].min()))
        if per_class < config.per_class:
            log(f"  engram analysis: {per_class} samples per class (the smallest class of the test split)")
        measured.setdefault("per_class", {})[modality] = per_class
        features = collect_features(
            model,
            data,
            per_class=per_class,
            modality=modality,
            batch_size=config.batch_size,
            device=device,
            seed=config.seed,
            progress=config.progress,
        )
        path = features_dir / f"{model_name}-{modality}.npz"
        save_features(path, features)
        measured["features"][modality] = str(path.relative_to(features_dir.parent))
    measured["measure_seconds"] = time.perf_counter() - started
    return measured


def _environment(device: str) -> dict[str, Any]:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _comparable(settings: Optional[dict]) -> Optional[dict]:
    """The settings a continued study must share with the saved one: all but the number of seeds
    (runs are keyed by their seed, so more seeds add runs beside the finished ones)."""
    return None if settings is None else {k: v for k, v in settings.items() if k != "seeds"}


def _write_results(out: Path, results: dict[str, Any]) -> None:
    atomic_write(out / RESULTS, (json.dumps(results, indent=2) + "\n").encode())


def run_study(
    config: StudyConfig, log: Optional[Callable[[str], None]] = print, on_ready: Optional[Callable[[], None]] = None
) -> dict[str, Any]:
    """Train and measure every run of ``config`` (skipping what <out>/results.json already holds for
    the same settings), then write the report. Returns the results dict.

    Everything a user can get wrong (device, datasets, batch size, an <out> of other settings) is
    checked first; ``on_ready`` is called after that, before the first run trains."""
    log = log or (lambda *_: None)
    out = Path(config.out)
    device = _device(config)
    runs = config.runs()
    _preflight(config, runs)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, *(p for p in out.iterdir() if p.is_dir())):  # writes cut short by a kill
        remove_partial_writes(folder)
    settings = config.to_dict()
    previous = out / RESULTS
    results: dict[str, Any] = {"config": settings, "environment": _environment(device), "runs": {}}
    if previous.exists():
        try:
            saved = json.loads(previous.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{previous} is not valid JSON ({exc}); remove it or choose another --out") from exc
        if _comparable(saved.get("config")) != _comparable(json.loads(json.dumps(settings))):
            raise ValueError(f"{out} holds a study with different settings; choose another --out")
        results["runs"] = saved.get("runs", {})
        results["study_seconds"] = saved.get("study_seconds", 0.0)
    if on_ready is not None:
        on_ready()
    started = time.perf_counter()
    planned = [(seed, model, modality) for seed in config.seed_list for model, modality in runs]
    for index, (seed, model, modality) in enumerate(planned, 1):
        key = run_key(model, modality, seed)
        if key in results["runs"]:
            log(f"[{index}/{len(planned)}] {key}: done before, kept")
            continue
        log(f"[{index}/{len(planned)}] {key}: training on {config.dataset_for(modality)}")
        run_dir = out / "runs" / key
        result = _train(config, model, modality, seed, run_dir, device, log)
        features = out / "features" if seed == config.seed else None  # the engram analysis: first seed
        result.update(
            _measure(config, model, run_dir / "best.pt", list(run_modalities(modality)), device, features, log)
        )
        results["runs"][key] = result
        _write_results(out, results)
    # summed over the invocations that continued it: a rerun that trains nothing adds its seconds
    results["study_seconds"] = results.get("study_seconds", 0.0) + time.perf_counter() - started
    write_report(out, results, config, log)
    _write_results(out, results)
    return results
