"""Drop-in torch modules built on sparsespike ops."""

from .linear import SpikeLinear

__all__ = ["SpikeLinear"]
