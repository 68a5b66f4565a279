"""Drop-in torch modules built on sparsespike ops."""

from .linear import SpikeLinear
from .neurons import LIF, LIFNode, Leaky

__all__ = ["LIF", "LIFNode", "Leaky", "SpikeLinear"]
