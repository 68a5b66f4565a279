"""Ops: one module per op, each with its reference, C++ path, Triton path and custom-op wiring."""

from .hgrn import HGRNOutput, hgrn_scan, hgrn_scan_reference
from .hopfield import hopfield_retrieve, hopfield_retrieve_reference
from .lif import LIFOutput, lif
from .lif_reference import lif_reference
from .spike_linear import spike_linear, spike_linear_reference

__all__ = [
    "HGRNOutput",
    "LIFOutput",
    "hgrn_scan",
    "hgrn_scan_reference",
    "hopfield_retrieve",
    "hopfield_retrieve_reference",
    "lif",
    "lif_reference",
    "spike_linear",
    "spike_linear_reference",
]
