"""Test inputs shared by the spike-propagating ops' tests."""

import torch


def make_spikes(shape, density, dtype, seed, graded=False):
    """Spikes of the given density: bool/uint8 0/1, or float 1.0 (graded: N(0, 1) values) at the
    active positions, reproducible from the seed."""
    g = torch.Generator().manual_seed(seed)
    active = torch.rand(shape, generator=g) < density
    if dtype in (torch.bool, torch.uint8):
        return active.to(dtype)
    values = torch.randn(shape, generator=g, dtype=torch.float64) if graded else torch.ones(shape, dtype=torch.float64)
    return (active * values).to(dtype)
