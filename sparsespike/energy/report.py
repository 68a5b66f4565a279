"""Energy of a model over a dataset: the meter run over evaluation batches, per-inference totals
under both real-input rules, a per-layer Markdown table and a JSON-ready dict.

    report = measure_energy(model, loader)          # loader yields (x, labels)
    print(report.markdown("45nm-fp32"))
    report.as_dict(["45nm-fp32", "45nm-int8"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import torch
from torch import nn

from ..models.contract import forward_modality
from .meter import REAL_INPUT_RULES, EnergyMeter
from .profiles import DEFAULT_PROFILE, get_profile


@dataclass
class EnergyReport:
    """What one metered pass measured. Counts (SynOps, MACs) are totals over ``samples``;
    ``per_inference`` divides them by the number of samples."""

    model: str
    dataset: str
    modality: Optional[str]
    samples: int
    correct: int
    layers: list[dict]
    other_synops: int
    spikes: int  # spikes of every spiking layer the run drove
    neurons: int  # neuron-time steps of those layers
    meter: EnergyMeter = field(repr=False, compare=False)

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.samples if self.samples else float("nan")

    @property
    def activation_sparsity(self) -> float:
        """1 - spikes / neuron-time steps, over every spiking layer (the study's ">97% sparsity")."""
        return 1.0 - self.spikes / self.neurons if self.neurons else float("nan")

    def per_inference(self, profile=DEFAULT_PROFILE, real_input: str = "mac") -> dict:
        """Per sample: SNN SynOps (and MACs of layers counted as MACs), ANN MACs, energy in uJ, ratio."""
        total = self.meter.estimate(profile, real_input)
        n = max(self.samples, 1)
        return {
            "real_input": real_input,
            "synops": total.synops / n,
            "snn_macs": total.snn_macs / n,
            "macs": total.macs / n,
            "snn_uj": total.snn_uj / n,
            "ann_uj": total.ann_uj / n,
            "ratio": total.ratio,
        }

    def as_dict(self, profiles: Sequence = (DEFAULT_PROFILE,)) -> dict:
        n = max(self.samples, 1)
        layers = [
            {**r, "synops_per_inference": r["synops"] / n, "macs_per_inference": r["macs"] / n} for r in self.layers
        ]
        return {
            "model": self.model,
            "dataset": self.dataset,
            "modality": self.modality,
            "samples": self.samples,
            "accuracy": self.accuracy,
            "activation_sparsity": self.activation_sparsity,
            "other_synops_per_inference": self.other_synops / n,
            "layers": layers,
            "profiles": {
                get_profile(p).name: {
                    "profile": get_profile(p).as_dict(),
                    **{rule: self.per_inference(p, rule) for rule in REAL_INPUT_RULES},
                }
                for p in profiles
            },
        }

    def markdown(self, profile=DEFAULT_PROFILE) -> str:
        """The per-layer table (per inference) and the totals under both real-input rules."""
        n = max(self.samples, 1)
        p = get_profile(profile)
        lines = [
            f"{self.model} on {self.dataset}: {self.samples} samples, accuracy {self.accuracy:.2f}%, "
            f"activation sparsity {100 * self.activation_sparsity:.2f}%, profile {p.name} "
            f"({p.accumulate_pj} pJ per accumulate, {p.mac_pj} pJ per MAC)",
            "",
            "| layer | kind | input density | binary input | output density | SynOps / inference | MACs / inference |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.layers:
            out = "-" if r["output_density"] is None else f"{r['output_density']:.4f}"
            lines.append(
                f"| {r['name']} | {r['kind']} | {r['input_density']:.4f} | "
                f"{'yes' if r['binary_input'] else 'no'} | {out} | {r['synops'] / n:,.0f} | "
                f"{r['macs'] / n:,.0f} |"
            )
        if self.other_synops:
            lines.append(f"| (hopfield scores) | - | - | yes | - | {self.other_synops / n:,.0f} | - |")
        lines += [
            "",
            "| real-valued input counted as | SynOps / inference | SNN MACs / inference | "
            "ANN MACs / inference | SNN uJ | ANN uJ | ANN / SNN |",
            "|---|---|---|---|---|---|---|",
        ]
        for rule in REAL_INPUT_RULES:
            t = self.per_inference(p, rule)
            lines.append(
                f"| {rule} | {t['synops']:,.0f} | {t['snn_macs']:,.0f} | {t['macs']:,.0f} | "
                f"{t['snn_uj']:.3f} | {t['ann_uj']:.3f} | {t['ratio']:.1f}x |"
            )
        return "\n".join(lines)


def _spike_totals(meter: EnergyMeter) -> tuple[int, int]:
    spikes = sum(r.spikes_out for r in meter.records.values())
    neurons = sum(r.neurons_out for r in meter.records.values())
    return spikes, neurons


@torch.no_grad()
def measure_energy(
    model: nn.Module,
    batches: Iterable,
    modality: Optional[str] = None,
    real_input: str = "mac",
    max_samples: Optional[int] = None,
    device="cpu",
    model_name: str = "",
    dataset_name: str = "",
    progress: bool = False,
) -> EnergyReport:
    """Run ``model`` in eval mode over ``batches`` of (x, labels) under an EnergyMeter; stop after
    ``max_samples``. ``modality`` ("visual" / "audio"): needed by a model that takes several
    (``model.modalities``); a model built for one may be given its own (the report's ``modality``
    is then None, as without it)."""
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    modality = forward_modality(model, modality)
    was_training = model.training
    model.eval()
    samples = correct = 0
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc=f"energy {model_name} {dataset_name}".strip(), leave=False, dynamic_ncols=True)
    try:
        with EnergyMeter(model, real_input=real_input) as meter:
            for x, labels in iterator:
                if max_samples is not None and samples >= max_samples:
                    break
                if max_samples is not None:
                    x, labels = x[: max_samples - samples], labels[: max_samples - samples]
                x, labels = x.to(device), labels.to(device)
                out = model(x, modality) if modality is not None else model(x)
                correct += int((out.logits.argmax(1) == labels).sum())
                samples += labels.shape[0]
    finally:
        model.train(was_training)
    if samples == 0:
        raise ValueError("batches held no samples: nothing was measured")
    spikes, neurons = _spike_totals(meter)
    return EnergyReport(
        model_name, dataset_name, modality, samples, correct, meter.layers(), meter.other_synops, spikes, neurons, meter
    )
