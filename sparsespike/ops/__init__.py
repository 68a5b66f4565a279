"""Ops: one module per op, each with its reference, C++ path, Triton path and custom-op wiring
declared to the op framework (``_framework.py``)."""

from .._deprecated import OPS_RENAMES, module_getattr
from .hgrn_scan import HGRNOutput, hgrn_scan, hgrn_scan_reference
from .lif import LIFBandOutput, LIFOutput, lif
from .lif_reference import lif_reference
from .modern_hopfield import modern_hopfield, modern_hopfield_reference
from .spike_conv2d import spike_conv2d, spike_conv2d_reference
from .spike_linear import spike_linear, spike_linear_reference
from .spiking_hopfield import (
    SpikingHopfieldOutput,
    hebbian_weight,
    pattern_overlap,
    spiking_hopfield_recall,
    spiking_hopfield_recall_reference,
)
from .supcon_loss import supcon_loss, supcon_loss_reference

__all__ = [
    "HGRNOutput",
    "LIFBandOutput",
    "LIFOutput",
    "SpikingHopfieldOutput",
    "hebbian_weight",
    "hgrn_scan",
    "hgrn_scan_reference",
    "lif",
    "lif_reference",
    "modern_hopfield",
    "modern_hopfield_reference",
    "pattern_overlap",
    "spike_conv2d",
    "spike_conv2d_reference",
    "spike_linear",
    "spike_linear_reference",
    "spiking_hopfield_recall",
    "spiking_hopfield_recall_reference",
    "supcon_loss",
    "supcon_loss_reference",
]

__getattr__ = module_getattr(__name__, OPS_RENAMES)
