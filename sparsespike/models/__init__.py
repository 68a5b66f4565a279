"""The study's architectures (M1..M5, visual and audio, and the joint model) on sparsespike's
ops and modules. ``build_model(name, modality, num_classes, backend, **options)``."""

from .architectures import M4HGRN, M1Baseline, M2SupCon, M3Hopfield, M5Hybrid, ModelOutput, StudyModel
from .backbones import AudioEncoder, SpikingHead, VisualEncoder
from .joint import JointModel
from .registry import MODEL_CLASSES, MODEL_NAMES, build_model
from .study_gate import StudyGate

__all__ = [
    "AudioEncoder",
    "JointModel",
    "M1Baseline",
    "M2SupCon",
    "M3Hopfield",
    "M4HGRN",
    "M5Hybrid",
    "MODEL_CLASSES",
    "MODEL_NAMES",
    "ModelOutput",
    "SpikingHead",
    "StudyGate",
    "StudyModel",
    "VisualEncoder",
    "build_model",
]
