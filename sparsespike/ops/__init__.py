"""Ops: one module per op, each with its reference, C++ path, Triton path and custom-op wiring."""

from .hgrn import HGRNOutput, hgrn_scan, hgrn_scan_reference
from .hopfield import hopfield_retrieve, hopfield_retrieve_reference
from .lif import LIFOutput, lif
from .lif_reference import lif_reference
from .spike_conv2d import spike_conv2d, spike_conv2d_reference
from .spike_linear import spike_linear, spike_linear_reference
from .spiking_hopfield import (
    HopfieldRecall,
    hebbian_weight,
    hopfield_recall,
    hopfield_recall_reference,
    pattern_overlap,
)

__all__ = [
    "HGRNOutput",
    "HopfieldRecall",
    "LIFOutput",
    "hebbian_weight",
    "hgrn_scan",
    "hgrn_scan_reference",
    "hopfield_recall",
    "hopfield_recall_reference",
    "hopfield_retrieve",
    "hopfield_retrieve_reference",
    "lif",
    "lif_reference",
    "pattern_overlap",
    "spike_conv2d",
    "spike_conv2d_reference",
    "spike_linear",
    "spike_linear_reference",
]
