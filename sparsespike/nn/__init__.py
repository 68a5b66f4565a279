"""Drop-in torch modules built on sparsespike ops."""

from .._deprecated import NN_RENAMES, module_getattr
from .conv import SpikeConv2d
from .hgrn import HGRN, HGRNBlock, HGRNStack
from .hopfield import HopfieldMemory, ModernHopfield
from .linear import SpikeLinear
from .neurons import LIF, Leaky, LIFNode
from .spiking_hopfield import SpikingHopfield
from .supcon import SupConLoss, supcon_loss, supcon_loss_reference

__all__ = [
    "HGRN",
    "HGRNBlock",
    "HGRNStack",
    "HopfieldMemory",
    "LIF",
    "LIFNode",
    "Leaky",
    "ModernHopfield",
    "SpikeConv2d",
    "SpikeLinear",
    "SpikingHopfield",
    "SupConLoss",
    "supcon_loss",
    "supcon_loss_reference",
]

__getattr__ = module_getattr(__name__, NN_RENAMES)
