"""sparsespike: event-driven spiking neural network kernels (C++ and Triton) for PyTorch."""

from . import (
    _allocator,
    dispatch,
    nn,
    synops,
)
from ._backend import backends, get_default_backend, set_default_backend
from ._deprecated import OPS_RENAMES, module_getattr
from .dispatch import get_crossover, set_crossover
from .ops import (
    HGRNOutput,
    LIFBandOutput,
    LIFOutput,
    SpikingHopfieldOutput,
    hebbian_weight,
    hgrn_scan,
    hgrn_scan_reference,
    lif,
    lif_reference,
    modern_hopfield,
    modern_hopfield_reference,
    pattern_overlap,
    spike_conv2d,
    spike_conv2d_reference,
    spike_linear,
    spike_linear_reference,
    spiking_hopfield_recall,
    spiking_hopfield_recall_reference,
    supcon_loss,
    supcon_loss_reference,
)
from .synops import SynOpCounter, count_synops, synop_scope

__version__ = "0.1.0"

# Importing changes nothing process-wide: the glibc tuning that keeps freed activation memory for
# reuse is a call (the CLIs make it), and Triton's interpreter is chosen on first use of a kernel.
configure_allocator = _allocator.configure

__all__ = [
    "HGRNOutput",
    "LIFBandOutput",
    "LIFOutput",
    "SpikingHopfieldOutput",
    "SynOpCounter",
    "backends",
    "configure_allocator",
    "count_synops",
    "dispatch",
    "get_crossover",
    "get_default_backend",
    "hebbian_weight",
    "hgrn_scan",
    "hgrn_scan_reference",
    "lif",
    "lif_reference",
    "modern_hopfield",
    "modern_hopfield_reference",
    "nn",
    "pattern_overlap",
    "set_crossover",
    "set_default_backend",
    "spike_conv2d",
    "spike_conv2d_reference",
    "spike_linear",
    "spike_linear_reference",
    "spiking_hopfield_recall",
    "spiking_hopfield_recall_reference",
    "supcon_loss",
    "supcon_loss_reference",
    "synop_scope",
    "synops",
]

__getattr__ = module_getattr(__name__, OPS_RENAMES)
