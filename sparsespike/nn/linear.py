"""SpikeLinear: nn.Linear for spike inputs, on the event-driven spike_linear op."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .._backend import check_backend
from .._checks import require_int
from ..ops.spike_linear import spike_linear


class SpikeLinear(nn.Linear):
    """Drop-in for ``nn.Linear`` whose input is a spike tensor ([..., in_features], bool, uint8
    or float). Same parameters, initialisation and state_dict keys as ``nn.Linear``; the forward
    propagates only the nonzero inputs (see :func:`sparsespike.spike_linear`).

    Args:
        in_features, out_features, bias, device, dtype: as ``nn.Linear``.
        backend: "auto", "reference", "cpp", "triton", or None for the process default.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        backend: Optional[str] = None,
    ) -> None:
        require_int(in_features, "in_features")
        require_int(out_features, "out_features")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.backend = None if backend is None else check_backend(backend)

    @classmethod
    def from_linear(cls, linear: nn.Linear, backend: Optional[str] = None) -> "SpikeLinear":
        """A SpikeLinear sharing ``linear``'s parameters (no copy)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight = linear.weight
        new.bias = linear.bias
        new.backend = None if backend is None else check_backend(backend)
        return new

    def forward(self, spikes: torch.Tensor, grad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """grad_mask (optional, the spikes' shape): the input gradient only at its nonzeros, e.g.
        the band of the LIF that fired the spikes (:meth:`LIF.fire`)."""
        return spike_linear(spikes, self.weight, self.bias, grad_mask=grad_mask, backend=self.backend)

    def extra_repr(self) -> str:
        backend = "" if self.backend is None else f", backend={self.backend!r}"
        return super().extra_repr() + backend
