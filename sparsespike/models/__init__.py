"""The study's architectures (M1..M5, visual and audio, and the joint model) on sparsespike's
ops and modules. ``build_model(name, modality, num_classes, backend, memory=..., **options)``;
``memory`` is "sequence" (default) or "study" for every model (see :mod:`.memory`)."""

from .architectures import M4HGRN, M1Baseline, M2SupCon, M3Hopfield, M5Hybrid, ModelOutput, StudyModel
from .backbones import AudioEncoder, SpikingHead, VisualEncoder
from .contract import forward_modality, modalities_of
from .joint import JointModel
from .memory import MEMORY_MODES
from .registry import MODEL_CLASSES, MODEL_NAMES, build_model, memory_from_deprecated, model_class, model_modalities
from .study_gate import StudyGate

__all__ = [
    "AudioEncoder",
    "JointModel",
    "M1Baseline",
    "M2SupCon",
    "M3Hopfield",
    "M4HGRN",
    "M5Hybrid",
    "MEMORY_MODES",
    "MODEL_CLASSES",
    "MODEL_NAMES",
    "ModelOutput",
    "SpikingHead",
    "StudyGate",
    "StudyModel",
    "VisualEncoder",
    "build_model",
    "forward_modality",
    "memory_from_deprecated",
    "modalities_of",
    "model_class",
    "model_modalities",
]
