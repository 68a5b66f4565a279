"""Training the study's models: configuration, the loop (single process or DDP), checkpoints.

The command line is ``python -m sparsespike.train``; this package is its library form.
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import MODELS, TrainConfig, default_dataset
from .loop import TrainingDiverged, fit, load_splits, load_trained, run_epoch

__all__ = [
    "CheckpointError",
    "MODELS",
    "TrainConfig",
    "TrainingDiverged",
    "default_dataset",
    "fit",
    "load_checkpoint",
    "load_splits",
    "load_trained",
    "run_epoch",
    "save_checkpoint",
]
