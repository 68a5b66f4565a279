"""The study's engram features: the time-mean of the 512-d hidden spike layer (``ModelOutput.rates``)
for a set of samples, with their labels and the model's predictions.

``collect_features(model, dataset, per_class=...)`` runs the model over a (class-balanced) subset
of a dataset of ``(frames, label)`` pairs; balanced subsets keep clustering scores and centroids
from being dominated by the larger classes. ``save_features`` / ``load_features`` keep them in an
.npz file (the study writes them per run and reads them back for its report).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_write
from ..models.contract import forward_modality

__all__ = ["Features", "balanced_indices", "collect_features", "dataset_labels", "load_features", "save_features"]


@dataclass
class Features:
    """rates float32 [N, D] (mean firing per hidden neuron, in [0, 1]), labels int64 [N],
    predictions int64 [N] (argmax of the logits; ties go to the lowest class)."""

    rates: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray

    def __post_init__(self) -> None:
        self.rates = np.asarray(self.rates, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.predictions = np.asarray(self.predictions, dtype=np.int64)
        if self.rates.ndim != 2:
            raise ValueError(f"rates must be 2-D [N, D], got shape {self.rates.shape}")
        n = self.rates.shape[0]
        if self.labels.shape != (n,) or self.predictions.shape != (n,):
            raise ValueError(
                f"labels and predictions must be [N] = [{n}] like rates, got "
                f"{self.labels.shape} and {self.predictions.shape}"
            )

    def __len__(self) -> int:
        return self.rates.shape[0]


def save_features(path: Union[str, Path], features: Features) -> None:
    """Write ``features`` to ``path`` as an .npz file (atomically: a killed run leaves no partial file)."""
    buffer = io.BytesIO()
    np.savez(buffer, rates=features.rates, labels=features.labels, predictions=features.predictions)
    atomic_write(path, buffer.getvalue())


def load_features(path: Union[str, Path]) -> Features:
    """The Features that :func:`save_features` wrote to ``path``."""
    with np.load(path) as data:
        return Features(data["rates"], data["labels"], data["predictions"])


def balanced_indices(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """``per_class`` random indices of every class in ``labels``, sorted (reading a cached
    dataset in order is faster); the same ``seed`` gives the same indices."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < per_class:
            raise ValueError(f"per_class={per_class} but class {cls.item()!r} has only {len(members)} samples")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _fast_labels(dataset) -> Optional[np.ndarray]:
    """Labels without reading any sample, where the dataset keeps them; else None."""
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return np.asarray(labels).astype(np.int64).reshape(-1)
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _fast_labels(dataset.dataset)
        return None if inner is None else inner[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1].detach().cpu().numpy().astype(np.int64).reshape(-1)
    return None


def dataset_labels(dataset) -> np.ndarray:
    """int64 [len(dataset)] labels: from ``.labels`` (the cached sets), a Subset of such a set, a
    TensorDataset's second tensor, or else by reading every ``(x, label)`` sample."""
    labels = _fast_labels(dataset)
    if labels is None:
        labels = np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)
    if labels.shape != (len(dataset),):
        raise ValueError(f"dataset has {len(dataset)} samples but {labels.shape[0]} labels")
    return labels


def _batch(dataset, indices: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    xs = [torch.as_tensor(dataset[int(i)][0]) for i in indices]
    x = torch.stack(xs)
    if x.dtype.is_floating_point:
        x = x.to(dtype)  # the cached frames are float32; a float64 model takes float64
    return x.to(device)


def collect_features(
    model: nn.Module,
    dataset,
    per_class: Optional[int] = None,
    modality: Optional[str] = None,
    batch_size: int = 64,
    device="cpu",
    seed: int = 0,
    progress: bool = True,
) -> Features:
    """Run ``model`` over ``dataset`` (all samples, or ``per_class`` of each class chosen by
    :func:`balanced_indices` with ``seed``) and keep the spike-layer rates, labels and predictions.

    The model is moved to ``device`` and run in eval mode without gradients (its training flag is
    restored afterwards). ``modality`` ("visual"/"audio") is required for a model that takes
    several (``model.modalities``: one encoder each); for a model built for one, it may be given
    and must be that one. Samples are ``(x [T, ...], label)`` as the datasets return them.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    modality = forward_modality(model, modality)
    labels = dataset_labels(dataset)
    indices = np.arange(len(labels)) if per_class is None else balanced_indices(labels, per_class, seed)
    if len(indices) == 0:
        raise ValueError("dataset has no samples")
    device = torch.device(device)
    model.to(device)
    dtype = next(model.parameters()).dtype
    starts = range(0, len(indices), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, total=len(starts), desc="features", unit="batch", leave=False, dynamic_ncols=True)
    was_training = model.training
    model.eval()
    rates, predictions = [], []
    try:
        with torch.no_grad():
            for start in starts:
                x = _batch(dataset, indices[start : start + batch_size], dtype, device)
                out = model(x, modality) if modality is not None else model(x)
                rates.append(out.rates.float().cpu().numpy())
                predictions.append(out.logits.argmax(1).cpu().numpy())
    finally:
        model.train(was_training)
    return Features(np.concatenate(rates), labels[indices], np.concatenate(predictions))
