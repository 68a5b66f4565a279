"""Ops: one module per op, each with its reference, C++ path, Triton path and custom-op wiring."""

from .lif import LIFOutput, lif
from .lif_reference import lif_reference
from .spike_linear import spike_linear, spike_linear_reference
from .spiking_hopfield import HopfieldRecall, hebbian_weight, hopfield_recall, hopfield_recall_reference, pattern_overlap

__all__ = [
    "HopfieldRecall",
    "LIFOutput",
    "hebbian_weight",
    "hopfield_recall",
    "hopfield_recall_reference",
    "lif",
    "lif_reference",
    "pattern_overlap",
    "spike_linear",
    "spike_linear_reference",
]
