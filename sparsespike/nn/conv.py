"""SpikeConv2d: nn.Conv2d for spike inputs, on the event-driven spike_conv2d op."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._backend import check_backend
from .._checks import require_int
from ..ops.spike_conv2d import spike_conv2d

# attributes nn.Conv2d sets in __init__ besides its parameters
_CONV_ATTRS = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "transposed",
    "output_padding",
    "groups",
    "padding_mode",
    "_reversed_padding_repeated_twice",
)


class SpikeConv2d(nn.Conv2d):
    """Drop-in for ``nn.Conv2d`` whose input is a spike map ([N, C_in, H, W] or unbatched
    [C_in, H, W] as nn.Conv2d; also [..., C_in, H, W], e.g. [T, B, C, H, W]; bool, uint8 or
    float). Same parameters, initialisation and state_dict keys as ``nn.Conv2d``; the forward
    propagates only the nonzero inputs (see :func:`sparsespike.spike_conv2d`).

    padding_mode other than "zeros" pads the spikes first (as nn.Conv2d does), then convolves
    without padding. groups > 1 runs the dense reference (with a warning). Unlike nn.Conv2d,
    padding above dilation * (kernel_size - 1) per side (outputs that would see only padding) is
    an error.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: as ``nn.Conv2d``.
        backend: "auto", "reference", "cpp", "triton", or None for the process default.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        backend: Optional[str] = None,
    ) -> None:
        require_int(in_channels, "in_channels")
        require_int(out_channels, "out_channels")
        for size in kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,):
            require_int(size, "kernel_size")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self.backend = None if backend is None else check_backend(backend)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, backend: Optional[str] = None) -> "SpikeConv2d":
        """A SpikeConv2d sharing ``conv``'s parameters (no copy) and configuration."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for name in _CONV_ATTRS:
            setattr(new, name, getattr(conv, name))
        new.weight = conv.weight
        new.register_parameter("bias", conv.bias)  # a Parameter, or None registered like nn.Conv2d's
        new.backend = None if backend is None else check_backend(backend)
        return new

    def forward(self, spikes: torch.Tensor, grad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """grad_mask (optional, the spikes' shape): the input gradient only at its nonzeros, e.g.
        the band of the LIF that fired the spikes (:meth:`LIF.fire`); zero padding only."""
        unbatched = spikes.dim() == 3
        if unbatched:
            spikes = spikes.unsqueeze(0)
            grad_mask = None if grad_mask is None else grad_mask.unsqueeze(0)
        if grad_mask is not None and self.padding_mode != "zeros":
            raise ValueError(f"grad_mask needs padding_mode='zeros', got {self.padding_mode!r}")
        if self.padding_mode != "zeros":
            x = spikes if spikes.dtype.is_floating_point else spikes.to(self.weight.dtype)
            flat = x.reshape(-1, *x.shape[-3:])
            padded = F.pad(flat, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            spikes, padding = padded.reshape(*x.shape[:-2], *padded.shape[-2:]), 0
        else:
            padding = self.padding
        out = spike_conv2d(
            spikes,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            grad_mask=grad_mask,
            backend=self.backend,
        )
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        backend = "" if self.backend is None else f", backend={self.backend!r}"
        return super().extra_repr() + backend
