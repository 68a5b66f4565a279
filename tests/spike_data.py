"""Test inputs (and small firing models) shared by the tests."""

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


def firing_model(name, modality, dtype=torch.float32, **options):
    """A small study model (sparsespike.models.build_model) with every weight tripled, so that each
    spiking layer fires on sparse test input (PyTorch's init leaves the deeper layers silent)."""
    from sparsespike.models import build_model

    model = build_model(name, modality, **options).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model
