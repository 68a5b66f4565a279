"""build_model: the study's models by name."""

from __future__ import annotations

from typing import Optional

from torch import nn

from .architectures import M4HGRN, MODALITIES, M1Baseline, M2SupCon, M3Hopfield, M5Hybrid
from .joint import JointModel

__all__ = ["MODEL_CLASSES", "MODEL_NAMES", "build_model"]

MODEL_CLASSES = {"m1": M1Baseline, "m2": M2SupCon, "m3": M3Hopfield, "m4": M4HGRN, "m5": M5Hybrid, "joint": JointModel}
MODEL_NAMES = tuple(MODEL_CLASSES)


def build_model(
    name: str, modality: Optional[str] = "visual", num_classes: int = 10, backend: Optional[str] = None, **options
) -> nn.Module:
    """The study's model ``name`` ("m1".."m5" or "joint") for ``modality`` ("visual" or "audio";
    ignored for "joint", which takes both). ``options`` go to the model class: e.g. hgrn="study",
    hopfield="study", input_shape, hidden_sizes, feature_size, supcon_weight."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    if name == "joint":
        if modality not in (None, "both") + MODALITIES:
            raise ValueError(f"modality must be 'visual', 'audio' or 'both' (ignored for joint), got {modality!r}")
        return JointModel(num_classes=num_classes, backend=backend, **options)
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return MODEL_CLASSES[name](modality, num_classes, backend, **options)
