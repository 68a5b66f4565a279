"""The study's models by name: build_model, and what a caller may ask of a model before building it
(model_class, model_modalities) or of the deprecated memory keywords (memory_from_deprecated)."""

from __future__ import annotations

from typing import Optional

from torch import nn

from .architectures import M4HGRN, MODALITIES, M1Baseline, M2SupCon, M3Hopfield, M5Hybrid
from .joint import JointModel
from .memory import check_deprecated

__all__ = ["MODEL_CLASSES", "MODEL_NAMES", "build_model", "memory_from_deprecated", "model_class", "model_modalities"]

MODEL_CLASSES = {"m1": M1Baseline, "m2": M2SupCon, "m3": M3Hopfield, "m4": M4HGRN, "m5": M5Hybrid, "joint": JointModel}
MODEL_NAMES = tuple(MODEL_CLASSES)


def model_class(name: str) -> type:
    """The class of model ``name``; its class attributes say what it takes (``memory_modes``,
    ``multimodal``: see :mod:`.contract`)."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    return MODEL_CLASSES[name]


def model_modalities(name: str) -> Optional[tuple[str, ...]]:
    """The modalities one model ``name`` takes together, in order, each from its own dataset (the
    joint model: ("visual", "audio")); None for a model built for one modality of the caller's."""
    cls = model_class(name)
    return tuple(cls.modalities) if cls.multimodal else None


def build_model(
    name: str, modality: Optional[str] = "visual", num_classes: int = 10, backend: Optional[str] = None, **options
) -> nn.Module:
    """The study's model ``name`` ("m1".."m5" or "joint") for ``modality`` ("visual" or "audio";
    ignored by a model that takes several, as "joint": None or "both" say so). ``options`` go to
    the model class: memory ("sequence" or "study", every model; M1 and M2 have only "sequence"),
    input_shape, hidden_sizes, feature_size, supcon_weight, ..."""
    cls = model_class(name)
    if cls.multimodal:
        if modality not in (None, "both") + tuple(cls.modalities):
            raise ValueError(
                f"modality must be one of {cls.modalities}, 'both' or None (ignored for {name}, which takes "
                f"them all), got {modality!r}"
            )
        return cls(num_classes=num_classes, backend=backend, **options)
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return cls(modality, num_classes, backend, **options)


def memory_from_deprecated(name: str, hgrn: Optional[str] = None, hopfield: Optional[str] = None) -> Optional[str]:
    """The memory mode that the deprecated keywords chose for model ``name``: the one the model took
    (hopfield= for m3; hgrn= for m4, m5 and joint), None where it took neither (m1, m2) or that one
    is not given. Every keyword given is checked (a ValueError names it). No warning: the caller
    words it in its own terms (a keyword, a flag)."""
    given = {"hgrn": hgrn, "hopfield": hopfield}
    modes = {keyword: check_deprecated(keyword, value) for keyword, value in given.items() if value is not None}
    return modes.get(model_class(name).deprecated_memory_keyword)
