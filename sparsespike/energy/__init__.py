"""Energy from the synaptic operations the kernels performed: per-operation energy profiles, the
SNN-versus-ANN arithmetic, and a per-layer meter over a model run."""

from .meter import EnergyMeter, LayerRecord
from .profiles import DEFAULT_PROFILE, PROFILES, EnergyEstimate, EnergyProfile, estimate, get_profile
from .report import EnergyReport, measure_energy

__all__ = [
    "DEFAULT_PROFILE",
    "EnergyEstimate",
    "EnergyMeter",
    "EnergyProfile",
    "EnergyReport",
    "LayerRecord",
    "PROFILES",
    "estimate",
    "get_profile",
    "measure_energy",
]
