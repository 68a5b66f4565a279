"""Drop-in torch modules built on sparsespike ops."""

from .linear import SpikeLinear
from .neurons import LIF, LIFNode, Leaky
from .spiking_hopfield import SpikingHopfield

__all__ = ["LIF", "LIFNode", "Leaky", "SpikeLinear", "SpikingHopfield"]
