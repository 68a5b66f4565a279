"""The study's report folder: Table I (accuracy), Table II (joint vs parallel), Table III (engrams),
the energy table, figures, and report.md with the published numbers beside the measured ones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from .._atomic import atomic_write
from ..analysis import (
    centroid_alignment,
    engram_markdown,
    engram_table,
    load_features,
    plot_alignment,
    plot_embedding,
)
from . import published
from .plan import BOTH, MODALITIES, STUDY_MODELS, StudyConfig, run_key


def _fmt(value: Optional[float], digits: int = 2, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _spread(values) -> Optional[float]:
    """The sample standard deviation over seeds; None for fewer than two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _fmt_seeds(values, digits: int = 2) -> str:
    """Values over seeds as mean ± standard deviation; the value alone for one seed, "-" for none."""
    mean, spread = _mean(values), _spread(values)
    if mean is None:
        return "-"
    return _fmt(mean, digits) if spread is None else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _seed_runs(results: dict, model: str, modality: str, seeds) -> list[dict]:
    """The runs that trained ``model`` on ``modality``, one per seed that has one: its own, or its
    run on both (a model that takes every modality at once)."""
    runs = results["runs"]
    found = [runs.get(run_key(model, modality, s), runs.get(run_key(model, BOTH, s))) for s in seeds]
    return [run for run in found if run is not None]


def _run(results: dict, model: str, modality: str, seed: int) -> dict:
    """The run of ``model`` on ``modality`` with ``seed``; {} when there is none."""
    runs = _seed_runs(results, model, modality, (seed,))
    return runs[0] if runs else {}


def _accuracy(run: dict, modality: str) -> Optional[float]:
    """A run's accuracy on ``modality``: per modality of a run on both, else its best."""
    by_modality = run.get("best_eval_acc_by_modality")
    return by_modality.get(modality) if by_modality is not None else run.get("best_eval_acc")


def _accuracies(results: dict, model: str, seeds) -> dict[str, list[float]]:
    """Per modality, ``model``'s accuracy at each seed (that has a run)."""
    return {m: [_accuracy(r, m) for r in _seed_runs(results, model, m, seeds)] for m in MODALITIES}


def _averages(results: dict, model: str, seeds) -> list[float]:
    """Per seed, the mean of ``model``'s visual and audio accuracy (seeds with both)."""
    pairs = [[_accuracy(_run(results, model, m, s), m) for m in MODALITIES] for s in seeds]
    return [sum(pair) / 2 for pair in pairs if None not in pair]


def _sparsities(results: dict, model: str, modality: str, seeds) -> list[float]:
    """Per seed, the activation sparsity (%) that metering ``model`` on ``modality`` found."""
    runs = _seed_runs(results, model, modality, seeds)
    return [100 * r["energy"][modality]["activation_sparsity"] for r in runs if modality in r.get("energy", {})]


def accuracy_table(results: dict, config: StudyConfig) -> str:
    """Table I: per model, the study's N-MNIST / SHD accuracy beside the measured one (mean ± sd
    over the seeds), and the measured activation sparsity."""
    seeds = config.seed_list
    lines = [
        f"| model | study visual (N-MNIST) | measured visual ({config.visual}) | study audio (SHD) | "
        f"measured audio ({config.audio}) | study average | measured average | activation sparsity % "
        "visual | activation sparsity % audio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in [m for m in STUDY_MODELS if m in config.models]:
        pv, pa = published.ACCURACY[model]
        measured = _accuracies(results, model, seeds)
        lines.append(
            f"| {published.MODEL_TITLES[model]} | {pv:.2f} | {_fmt_seeds(measured['visual'])} | {pa:.2f} | "
            f"{_fmt_seeds(measured['audio'])} | {published.AVERAGE[model]:.2f} | "
            f"{_fmt_seeds(_averages(results, model, seeds))} | "
            + " | ".join(_fmt_seeds(_sparsities(results, model, m, seeds)) for m in MODALITIES)
            + " |"
        )
    return "\n".join(lines)


def joint_table(results: dict, config: StudyConfig) -> Optional[str]:
    """Table II: the joint model against separately trained ("parallel") M4 models."""
    if "joint" not in config.models:
        return None
    seeds = config.seed_list
    lines = [
        "| deployment | study visual | measured visual | study audio | measured audio | study average | "
        "measured average |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, model in (("parallel: two M4 models", "m4"), ("joint: two encoders, shared HGRN and head", "joint")):
        if model == "m4" and "m4" not in config.models:
            continue
        pv, pa = published.ACCURACY[model]
        measured = _accuracies(results, model, seeds)
        lines.append(
            f"| {label} | {pv:.2f} | {_fmt_seeds(measured['visual'])} | {pa:.2f} | "
            f"{_fmt_seeds(measured['audio'])} | {published.AVERAGE[model]:.2f} | "
            f"{_fmt_seeds(_averages(results, model, seeds))} |"
        )
    return "\n".join(lines)


# a study difference smaller than this (points) counts as none: the paper gives one run per model
STUDY_NO_EFFECT = 0.5
MIN_SPREAD = 0.5  # nor does a measured one within this many points, however alike the seeds


def pattern(results: dict, config: StudyConfig) -> Optional[str]:
    """Each memory model against M1 per modality: the measured difference of the mean accuracies,
    whether it exceeds the spread (the sum of the two models' standard deviations over seeds, at
    least MIN_SPREAD points), and
    the study's difference; then which measured differences follow the study's pattern."""
    seeds = config.seed_list
    if "m1" not in config.models or len(seeds) < 2:
        return None
    base = _accuracies(results, "m1", seeds)
    rows, verdicts = [], []
    for model in [m for m in STUDY_MODELS if m != "m1" and m in config.models] + (
        ["joint"] if "joint" in config.models else []
    ):
        measured = _accuracies(results, model, seeds)
        cells = [published.MODEL_TITLES[model]]
        for index, modality in enumerate(MODALITIES):
            a, b = measured[modality], base[modality]
            if _spread(a) is None or _spread(b) is None:  # fewer than two seeds on a side
                cells += ["-", "-", "-"]
                continue
            diff = _mean(a) - _mean(b)
            # floored: on a saturated set every seed may score alike, and a spread of 0 would count
            # one test sample's difference
            spread = max(_spread(a) + _spread(b), MIN_SPREAD)
            study = published.ACCURACY[model][index] - published.ACCURACY["m1"][index]
            beyond = abs(diff) > spread
            cells += [f"{diff:+.2f} (spread {spread:.2f})", "yes" if beyond else "no", f"{study:+.2f}"]
            if beyond:
                verdicts.append(_verdict(model, modality, diff, study))
        rows.append("| " + " | ".join(cells) + " |")
    lines = [
        "| model vs M1 | visual: measured difference | beyond spread | study | audio: measured difference "
        "| beyond spread | study |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(lines) + "\n\n"
    text += (
        "\n".join(f"- {v}" for v in verdicts)
        if verdicts
        else "- No difference to M1 exceeds the spread over seeds: on these sets the memory mechanisms cannot be "
        "told apart from noise."
    )
    return text


def _verdict(model: str, modality: str, diff: float, study: float) -> str:
    direction = "helps" if diff > 0 else "hurts"
    title = published.MODEL_TITLES[model]
    if abs(study) < STUDY_NO_EFFECT:
        agrees = f"the study saw no effect ({study:+.2f})"
    elif (study > 0) == (diff > 0):
        agrees = f"as in the study ({study:+.2f})"
    else:
        agrees = f"against the study ({study:+.2f})"
    return f"{title} {direction} {modality} by {abs(diff):.2f} points, beyond the spread: {agrees}."


def energy_table(results: dict, config: StudyConfig, profile: str = "45nm-fp32") -> str:
    """Per model and modality: activation sparsity, SynOps and MACs per inference, energy, ratio."""
    lines = [
        "| model | modality | metered samples | accuracy % | activation sparsity % | SynOps / inference | "
        "ANN MACs / inference | SNN uJ | ANN uJ | ANN / SNN (real input as MACs) | "
        "ANN / SNN (real input as SynOps) | study ANN / SNN |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"].values():
        if run.get("seed", config.seed) != config.seed:  # the first seed's models
            continue
        model = run["model"]
        for modality, energy in run.get("energy", {}).items():
            as_mac = energy["profiles"][profile]["mac"]
            as_synop = energy["profiles"][profile]["synop"]
            study = published.ENERGY.get(model) if modality == "visual" else None
            lines.append(
                f"| {model} | {modality} | {energy['samples']} | {_fmt(energy['accuracy'])} | "
                f"{_fmt(100 * energy['activation_sparsity'])} | {as_mac['synops']:,.0f} | "
                f"{as_mac['macs']:,.0f} | {as_mac['snn_uj']:.2f} | {as_mac['ann_uj']:.1f} | "
                f"{as_mac['ratio']:.1f}x | {as_synop['ratio']:.1f}x | "
                f"{f'{study[2]:.0f}x' if study else '-'} |"
            )
    return "\n".join(lines)


def _engram(out: Path, results: dict, config: StudyConfig, log) -> dict[str, dict]:
    """Engram metrics per model (the separately trained models are compared across modalities;
    a model that takes both, with itself), and the figures."""
    tables: dict[str, dict] = {}
    figures = out / "figures"
    for model in config.models:
        paths = {m: _run(results, model, m, config.seed).get("features", {}).get(m) for m in MODALITIES}
        features = {m: load_features(out / p) for m, p in paths.items() if p}
        if not features:
            continue
        tables[model] = engram_table(features)
        for modality, feats in features.items():
            plot_embedding(
                feats,
                figures / f"{model}-{modality}-{config.embedding}.png",
                method=config.embedding,
                title=f"{model} {modality} features ({config.embedding})",
            )
        if len(features) == 2:
            for centered, suffix in ((False, ""), (True, "-centered")):
                alignment = centroid_alignment(
                    features["visual"].rates,
                    features["visual"].labels,
                    features["audio"].rates,
                    features["audio"].labels,
                    centered=centered,
                )
                plot_alignment(
                    alignment,
                    figures / f"{model}-alignment{suffix}.png",
                    title=f"{model}: {'centred ' if centered else ''}class-centroid cosine, "
                    f"visual (rows) vs audio (columns)",
                )
        log(f"  engram analysis and figures: {model}")
    return tables


def engram_comparison(tables: dict[str, dict]) -> str:
    """The engram figures the study quotes, beside the measured ones."""

    def cell(model: str, *path) -> Optional[float]:
        value: Any = tables.get(model)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    cross = "visual-audio"
    zero_shot = [cell(m, cross, k) for m in tables for k in ("zero_shot_visual_to_audio", "zero_shot_audio_to_visual")]
    chance = _mean([cell(m, cross, "chance") for m in tables])
    dims = {mod: _mean([cell(m, mod, "effective_dim_pct") for m in tables]) for mod in MODALITIES}
    sparsity = _mean([cell(m, mod, "sparsity") for m in tables for mod in MODALITIES])
    rows = [
        ("silhouette, M4 visual", published.ENGRAM["m4"]["silhouette_visual"], cell("m4", "visual", "silhouette"), 3),
        (
            "cross-modal centroid cosine (same class), M2",
            published.ENGRAM["m2"]["cosine_same"],
            cell("m2", cross, "cosine_same"),
            3,
        ),
        (
            "cross-modal centroid cosine (same class), M4",
            published.ENGRAM["m4"]["cosine_same"],
            cell("m4", cross, "cosine_same"),
            3,
        ),
        (
            f"zero-shot transfer %, mean over models and directions (chance {_fmt(chance, 1)})",
            published.ZERO_SHOT_ACCURACY,
            _mean(zero_shot),
            1,
        ),
        (
            "effective dimensionality % of the feature width, visual (mean over models)",
            published.EFFECTIVE_DIMENSIONALITY_PERCENT["visual"],
            dims["visual"],
            1,
        ),
        (
            "effective dimensionality % of the feature width, audio (mean over models)",
            published.EFFECTIVE_DIMENSIONALITY_PERCENT["audio"],
            dims["audio"],
            1,
        ),
        (
            "feature-layer sparsity % (1 - mean rate, mean over models and modalities)",
            published.ACTIVATION_SPARSITY_PERCENT,
            None if sparsity is None else 100 * sparsity,
            1,
        ),
    ]
    lines = ["| quantity | study | measured |", "|---|---|---|"]
    lines += [f"| {label} | {study:.{digits}f} | {_fmt(measured, digits)} |" for label, study, measured, digits in rows]
    return "\n".join(lines)


def _init(config: StudyConfig) -> str:
    calibrated = [m for m in MODALITIES if m in config.calibrate]
    default = [m for m in MODALITIES if m not in config.calibrate]
    parts = [f"{', '.join(calibrated)} layers calibrated to fire at ~3%"] if calibrated else []
    parts += [f"{', '.join(default)} layers at PyTorch's init"] if default else []
    return "; ".join(parts)


def _per_class(results: dict, config: StudyConfig) -> str:
    """The samples per class the engram analysis used: --per-class, or fewer where a test split's
    smallest class holds fewer."""
    used = {m: n for run in results["runs"].values() for m, n in run.get("per_class", {}).items()}
    return ", ".join(f"{used.get(m, config.per_class)} {m}" for m in MODALITIES)


def _activity(config: StudyConfig) -> str:
    if not config.activity_weight:
        return "off (weight 0)"
    return (
        f"weight {config.activity_weight:g} x sum over hidden layers of max(0, rate - {config.activity_target:g})^2 "
        f"added to the loss (`--activity-weight`, `--activity-target`)"
    )


def _setup(results: dict, config: StudyConfig) -> str:
    env = results["environment"]
    runs = results["runs"].values()
    minutes = sum(r.get("wall_seconds", 0.0) + r.get("measure_seconds", 0.0) for r in runs) / 60
    data = "the embedded sets (no download)" if config.embedded else "the datasets in --data-dir"
    lines = [
        f"- Data: visual `{config.visual}`, audio `{config.audio}` ({data}); test split for every measurement.",
        f"- Models: {', '.join(config.models)}; size `{config.size}` "
        f"(visual options {config.model_options('visual') or 'the study'}, audio options "
        f"{config.model_options('audio') or 'the study'}).",
        f"- Training: {config.epochs} epochs max, batch {config.batch_size}, lr {config.lr}, AdamW, cosine schedule, "
        f"clip 1.0, early stopping (patience 7); init: {_init(config)}; train subset "
        f"{config.limit_train or 'all'}, eval subset {config.limit_eval or 'all'} per dataset. Accuracy = the best "
        f"epoch's accuracy on the evaluation split (the test split: these sets have no validation split).",
        f"- Seeds: {', '.join(map(str, config.seed_list))}"
        + (
            "; accuracies and sparsities are the mean ± the standard deviation over them; energy, engram "
            "analysis and figures use the first seed's models."
            if len(config.seed_list) > 1
            else "."
        ),
        f"- Activity regulariser: {_activity(config)}. Logits: "
        + (
            "output spike counts (the study's)."
            if config.readout == "count"
            else "the output neurons' mean membrane (the study's are spike counts, `--readout count`)."
        )
        + (
            " With the reference heads spike counts are one LIF step's 0/1 outputs: measured at chance."
            if config.readout == "count" and config.memory == "study"
            else ""
        )
        + f" Memory: `{config.memory}`"
        + (" (the reference code's heads)." if config.memory == "study" else " (over the spike sequence)."),
        f"- Energy: {config.energy_samples} test samples per model and modality, counted by the kernels; "
        f"engram analysis: {_per_class(results, config)} test samples per class.",
        f"- Machine: {env['platform']}, torch {env['torch']}, device {env['device']}"
        f"{' (' + env['gpu'] + ')' if 'gpu' in env else ''}, {env['torch_threads']} threads; training and "
        f"measuring took {minutes:.1f} min in all ({len(results['runs'])} runs).",
    ]
    if config.quick:
        lines.append(
            "- `--quick`: tiny models, one epoch, a few dozen samples. It checks the pipeline; "
            "its numbers mean nothing."
        )
    if config.embedded:
        lines.append(
            "- The embedded sets stand in for N-MNIST and SHD (same shapes and formats, other content): "
            "compare the patterns, not the numbers. Pass `--datasets nmnist,shd --data-dir DIR` for the "
            "real study."
        )
    return "\n".join(lines)


def write_report(out: Path, results: dict, config: StudyConfig, log=print) -> Path:
    """Write tables/*.md, engram.json, figures/*.png and report.md into ``out``."""
    tables_dir = out / "tables"
    engram = _engram(out, results, config, log)
    tables = {
        "table1-accuracy": accuracy_table(results, config),
        "table2-joint": joint_table(results, config),
        "pattern": pattern(results, config),
        "table3-engram": engram_markdown(engram).rstrip("\n") if engram else None,
        "table3-engram-study": engram_comparison(engram) if engram else None,
        "energy": energy_table(results, config),
    }
    for name, text in tables.items():
        if text:
            atomic_write(tables_dir / f"{name}.md", (text + "\n").encode())
    atomic_write(out / "engram.json", (json.dumps(engram, indent=2) + "\n").encode())
    figures = sorted(p.name for p in (out / "figures").glob("*.png")) if (out / "figures").exists() else []
    sections = [
        "# The study, measured by sparsespike",
        "Modality-Dependent Memory Mechanisms in Cross-Modal Neuromorphic Computing (arXiv 2512.18575): "
        "the study's published numbers beside the ones this run measured.",
        "## Setup",
        _setup(results, config),
        "## Table I: accuracy (%)",
        tables["table1-accuracy"],
    ]
    if tables["table2-joint"]:
        sections += [
            "## Table II: joint vs parallel (%)",
            tables["table2-joint"],
            "The study's averages are as published; its joint average (88.78) is M4's, not the mean of "
            "its joint row (86.89).",
        ]
    if tables["pattern"]:
        sections += [
            "## Pattern: which memory helps which modality",
            "Each model's mean accuracy minus M1's, per modality. A difference counts only beyond the spread, "
            f"the sum of the two models' standard deviations over the seeds (at least {MIN_SPREAD} points); the "
            "study's difference (one run "
            f"per model) beside it, under {STUDY_NO_EFFECT} points read as none. The study's pattern: Hopfield "
            "memory (M3, M5) helps visual and hurts audio; the contrastive loss (M2) helps audio.",
            tables["pattern"],
        ]
    if engram:
        sections += [
            "## Table III: engram analysis",
            "The first seed's models. Rate-coded features (time-mean of the 512-d spike layer) on balanced test samples. The "
            "separately trained models are compared across modalities (visual model vs audio model); the "
            "joint model with itself. DB = Davies-Bouldin, CH = Calinski-Harabasz; silhouette is euclidean. "
            "Raw centroid cosine is the study's measure; rates are never negative, so it is biased "
            "positive for every pair of classes. The centred one subtracts each modality's mean centroid "
            "first: 0 there means no shared class geometry.",
            tables["table3-engram"],
            "The study's quoted figures:",
            tables["table3-engram-study"],
        ]
    sections += [
        "## Energy per inference (45 nm fp32: 0.9 pJ per accumulate, 4.6 pJ per MAC)",
        "The first seed's models. SynOps are the operations the kernels performed on the metered test samples. Layers whose input is "
        "real-valued (event-count frames, a memory's dense output) count as MACs in the SNN too, or as "
        "SynOps; both ratios are shown. The study quotes 603x overall; its table gives M1 326x and M4 601x "
        "on N-MNIST (6,495,671 and 3,520,541 SynOps vs 413,840,000 MACs). All profiles are in results.json.",
        tables["energy"],
    ]
    if figures:
        sections += ["## Figures", "\n".join(f"- [{name}](figures/{name})" for name in figures)]
    path = out / "report.md"
    atomic_write(path, ("\n\n".join(sections) + "\n").encode())
    log(f"report: {path}")
    return path
