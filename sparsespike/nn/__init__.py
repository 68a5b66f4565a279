"""Drop-in torch modules built on sparsespike ops."""

from .hgrn import HGRN, HGRNBlock, HGRNStack
from .linear import SpikeLinear
from .neurons import LIF, LIFNode, Leaky

__all__ = ["HGRN", "HGRNBlock", "HGRNStack", "LIF", "LIFNode", "Leaky", "SpikeLinear"]
