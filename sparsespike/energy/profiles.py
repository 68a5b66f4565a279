"""Energy per operation, and the SNN-versus-ANN arithmetic of the study.

A spiking layer fed by spikes performs one accumulate (AC) per synaptic operation; the ANN of the
same topology performs one multiply-accumulate (MAC) per connection and input. Per-operation
energies are Horowitz (ISSCC 2014), 45 nm: fp32 add 0.9 pJ, fp32 multiply 3.7 pJ (MAC 4.6 pJ, the
study's numbers); fp16 add 0.4, multiply 1.1 (MAC 1.5); int8 add 0.03, multiply 0.2 (MAC 0.23).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EnergyProfile:
    """Energy of one accumulate (a SynOp) and of one multiply-accumulate, in picojoules."""

    name: str
    accumulate_pj: float
    mac_pj: float

    def __post_init__(self) -> None:
        for field in ("accumulate_pj", "mac_pj"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{field} must be a positive number of picojoules, got {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "45nm-fp32": EnergyProfile("45nm-fp32", 0.9, 4.6),  # the study's default
    "45nm-fp16": EnergyProfile("45nm-fp16", 0.4, 1.5),
    "45nm-int8": EnergyProfile("45nm-int8", 0.03, 0.23),
}
DEFAULT_PROFILE = "45nm-fp32"


def get_profile(profile) -> EnergyProfile:
    """A preset by name, or an EnergyProfile as is."""
    if isinstance(profile, EnergyProfile):
        return profile
    if profile not in PROFILES:
        raise ValueError(
            f"unknown energy profile {profile!r}; presets: {', '.join(PROFILES)} "
            f"(or pass an EnergyProfile(name, accumulate_pj, mac_pj))"
        )
    return PROFILES[profile]


@dataclass(frozen=True)
class EnergyEstimate:
    synops: int
    macs: int
    snn_uj: float
    ann_uj: float
    snn_macs: int = 0  # MACs the SNN performs too (layers with real-valued input, rule "mac")

    @property
    def ratio(self) -> float:
        """How many times less energy the SNN needs than the ANN."""
        return self.ann_uj / self.snn_uj if self.snn_uj > 0 else float("inf")


def estimate(synops: int, macs: int, profile=DEFAULT_PROFILE, snn_macs: int = 0) -> EnergyEstimate:
    """SNN energy = synops x accumulate (+ snn_macs x MAC for layers counted as MACs), ANN energy =
    macs x MAC, in microjoules."""
    p = get_profile(profile)
    for name, value in (("synops", synops), ("macs", macs), ("snn_macs", snn_macs)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    snn = (synops * p.accumulate_pj + snn_macs * p.mac_pj) * 1e-6
    return EnergyEstimate(int(synops), int(macs), snn, macs * p.mac_pj * 1e-6, int(snn_macs))
