"""The study end to end: ``python -m sparsespike.study`` trains M1-M5 on a visual and an audio
dataset and the joint model, meters their energy, analyses their engrams, and writes a report
folder with the study's published numbers beside the measured ones."""

from .plan import ALL_RUNS, SIZES, StudyConfig
from .runner import run_study

__all__ = ["ALL_RUNS", "SIZES", "StudyConfig", "run_study"]
