"""What the event-driven ops hold for their weight gradient: 0/1 float spikes as uint8.

The weight gradient reads the forward's input spikes. Saved as they come (float32), a spiking
model's training step holds 4 bytes per input element of every layer until backward; as bytes, 1,
and the C++ gradient kernels read bytes exactly as they read 0/1 floats. One C++ pass converts
and checks that every value is 0 or 1; graded spikes, other devices and backends keep the input
itself (the reference stays the plain oracle).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._backend import cpp, numpy_view

_PACKED_DTYPES = (torch.float32, torch.float64)


def as_bytes_if_binary(spikes: Tensor, backend: str) -> Tensor:
    """A uint8 copy of 0/1 float CPU spikes for the auto/cpp backends, else ``spikes`` itself."""
    if (
        backend not in ("auto", "cpp")
        or spikes.device.type != "cpu"
        or spikes.dtype not in _PACKED_DTYPES
        or not spikes.is_contiguous()
        or cpp() is None
    ):
        return spikes
    packed = torch.empty(spikes.shape, dtype=torch.uint8)
    binary = cpp().spikes_to_bytes(
        numpy_view(spikes.reshape(1, -1)), packed.numpy().reshape(1, -1), torch.get_num_threads()
    )
    return packed if binary else spikes
