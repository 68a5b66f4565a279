"""The band-active fraction of every LIF with a compact-support surrogate, over training steps.

With a band-limited surrogate only neuron-steps near the threshold pass gradient: a layer whose
band goes (nearly) empty stops learning, as the prior art saw with small layers. The monitor
sums each layer's ``band_fraction`` per step on the device (no host sync), reads it every
``CHECK_EVERY`` steps to warn once per layer about starvation, and gives the epoch's means.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..nn import LIF

# below this fraction of neuron-steps in the band a layer counts as starved (warned once)
STARVED_FRACTION = 1e-3
CHECK_EVERY = 10


class BandMonitor:
    """Per-layer band-active fractions of ``model``'s LIFs whose surrogate has compact support."""

    def __init__(self, model: nn.Module) -> None:
        model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self.layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LIF) and m.compact_support]
        self.warned: set[str] = set()
        self.start_epoch()

    def __bool__(self) -> bool:
        return bool(self.layers)

    def start_epoch(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps: dict[str, int] = {}
        self.last: dict[str, float] = {}  # the fractions of the last checked step

    def add(self, step: int) -> None:
        """After training step ``step`` (0-based): add each layer's fraction; check every
        CHECK_EVERY steps."""
        for name, layer in self.layers:
            fraction = layer.band_fraction
            if fraction is None:  # the layer did not run in this step (another modality's encoder)
                continue
            self.sums[name] = self.sums[name] + fraction if name in self.sums else fraction.clone()
            self.steps[name] = self.steps.get(name, 0) + 1
            layer.band_fraction = None
            if step % CHECK_EVERY == 0:
                self.last[name] = float(fraction)
                self._check(name, self.last[name], f"step {step + 1}")

    def _check(self, name: str, fraction: float, where: str) -> None:
        if fraction < STARVED_FRACTION and name not in self.warned:
            self.warned.add(name)
            warnings.warn(
                f"gradient starvation: only {fraction:.2%} of {name}'s neuron-steps are in the "
                f"surrogate's band at {where}; the layer below it gets (almost) no gradient through "
                f"it. Widen the band (--grad-band) or use the exact surrogate",
                RuntimeWarning,
                stacklevel=3,
            )

    def means(self) -> dict[str, float]:
        """The epoch's mean band-active fraction per layer (one host sync), checked for starvation."""
        out = {name: float(total) / self.steps[name] for name, total in self.sums.items()}
        for name, fraction in out.items():
            self._check(name, fraction, "the epoch's mean")
        return out


def band_summary(fractions: dict[str, float], short: bool = False) -> str:
    """ "encoder.lif1 10.5%, encoder.lif2 0.4%" for a log line; short: "10.5/0.4%" (a progress bar)."""
    if short:
        return "/".join(f"{100 * f:.1f}" for f in fractions.values()) + "%"
    return ", ".join(f"{name} {fraction:.1%}" for name, fraction in fractions.items())
