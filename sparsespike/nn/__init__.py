"""Drop-in torch modules built on sparsespike ops."""

from .hopfield import Hopfield, HopfieldMemory
from .linear import SpikeLinear
from .neurons import LIF, LIFNode, Leaky

__all__ = ["Hopfield", "HopfieldMemory", "LIF", "LIFNode", "Leaky", "SpikeLinear"]
