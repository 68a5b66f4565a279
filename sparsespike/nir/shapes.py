"""Neuron shapes along a NIR chain, the same arithmetic for export and import."""

from __future__ import annotations

from typing import Sequence


def conv2d_output(shape: Sequence[int], out_channels: int, kernel_size, stride, padding, dilation) -> tuple[int, ...]:
    """(C_out, H_out, W_out) of a 2-D convolution of a (C, H, W) map (nn.Conv2d's formula); a size
    below 1 means the kernel does not fit."""
    sizes = zip(shape[1:], kernel_size, stride, padding, dilation)
    return (out_channels, *((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in sizes))
