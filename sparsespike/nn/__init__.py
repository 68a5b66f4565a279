"""Drop-in torch modules built on sparsespike ops."""

from .conv import SpikeConv2d
from .hgrn import HGRN, HGRNBlock, HGRNStack
from .hopfield import Hopfield, HopfieldMemory
from .linear import SpikeLinear
from .neurons import LIF, Leaky, LIFNode
from .spiking_hopfield import SpikingHopfield
from .supcon import SupConLoss, supcon_loss, supcon_loss_reference

__all__ = [
    "HGRN",
    "HGRNBlock",
    "HGRNStack",
    "Hopfield",
    "HopfieldMemory",
    "LIF",
    "LIFNode",
    "Leaky",
    "SpikeConv2d",
    "SpikeLinear",
    "SpikingHopfield",
    "SupConLoss",
    "supcon_loss",
    "supcon_loss_reference",
]
