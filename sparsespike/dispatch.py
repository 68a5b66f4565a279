"""backend="auto": event-driven or dense, chosen per call from spike density and shape.

An event-driven kernel's work scales with the number of spikes; a dense GEMM's does not. The
crossover density, below which the event-driven kernel wins, is a property of the device and is
measured by ``python -m sparsespike.bench --calibrate`` (which prints it and can write it as JSON).
The defaults below were measured that way (docs/dispatch.md); override them per process
with :func:`set_crossover` or with ``SPARSESPIKE_CROSSOVER``: inline JSON or a path to a JSON file,
e.g. ``{"cpu": {"forward_density": 0.2}}``.

On CUDA a call must not wait for the GPU to learn the density of its own input, so it uses the
density of the previous call through the same layer (copied to the host asynchronously) and
falls back to a shape rule on the first call.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import torch

from ._backend import count_set

_ENV = "SPARSESPIKE_CROSSOVER"


@dataclass(frozen=True)
class Crossover:
    """Event-driven below these input densities (fraction of nonzero spikes), dense above."""

    forward_density: float
    backward_density: float
    # CUDA only: without a density estimate yet, rows <= this use the event-driven kernel.
    small_rows: int = 64
    # spike_conv2d against torch's conv2d, forward and weight gradient: event-driven while
    # density * conv_width_factor(C_out) is below these
    conv_forward_density: float = 0.6
    conv_backward_density: float = 0.45


_DEFAULTS = {
    # bench --calibrate on the 2-core x86-64 (AVX2) development machine, 3200 x 1024 -> 1024, fp32:
    # measured crossings 0.33-0.38 forward and 0.19-0.26 weight gradient over four runs; rounded
    # down, since near the crossing both paths cost the same and the density is a sampled estimate.
    # spike_conv2d, 3x3 padding 1 at 34x34, 2 threads, one noisy run each: the event-driven
    # forward was faster than oneDNN up to density ~0.5 at 64->128 (N=50), ~0.28 at 32->32 and
    # ~0.25 at 16->16 (N=100), and at every density up to 0.5 at 2->64 (N=200, where oneDNN is
    # slow); the weight gradient up to ~0.4, ~0.18 and ~0.1. Rounded down through
    # conv_width_factor: 0.6 / 0.45 give 0.4 / 0.3 at C_out=128, 0.12 / 0.09 at C_out=16.
    "cpu": Crossover(forward_density=0.3, backward_density=0.2, conv_forward_density=0.6, conv_backward_density=0.45),
    # Estimates, not measurements, until a CUDA calibration replaces them (docs/dispatch.md).
    "cuda": Crossover(
        forward_density=0.01, backward_density=0.005, conv_forward_density=0.03, conv_backward_density=0.015
    ),
}
_overrides: dict[str, Crossover] = {}
_env_parsed: tuple[str, dict[str, Crossover]] | None = None  # (raw value, parsed): parse once


def _from_env() -> dict[str, Crossover]:
    global _env_parsed
    raw = os.environ.get(_ENV)
    if not raw:
        return {}
    if _env_parsed is not None and _env_parsed[0] == raw:
        return _env_parsed[1]
    try:
        text = open(raw).read() if os.path.exists(raw) else raw
        data = json.loads(text)
        parsed = {dev: dataclasses.replace(_DEFAULTS.get(dev, _DEFAULTS["cpu"]), **vals) for dev, vals in data.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f'${_ENV} must be JSON (or a JSON file) like {{"cpu": {{"forward_density": 0.2}}}}: {exc}'
        ) from exc
    _env_parsed = (raw, parsed)
    return parsed


def get_crossover(device_type: str) -> Crossover:
    if device_type in _overrides:
        return _overrides[device_type]
    env = _from_env()
    if device_type in env:
        return env[device_type]
    return _DEFAULTS.get(device_type, _DEFAULTS["cpu"])


def set_crossover(device_type: str, **values: float) -> Crossover:
    """Override crossover constants for a device type ("cpu", "cuda"); returns the new setting."""
    for name, value in values.items():
        if name not in {f.name for f in dataclasses.fields(Crossover)}:
            raise ValueError(f"unknown crossover field {name!r}")
        if not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"crossover {name} must be a non-negative number, got {value!r}")
    new = dataclasses.replace(get_crossover(device_type), **values)
    _overrides[device_type] = new
    return new


def reset_crossover() -> None:
    _overrides.clear()


def padding_factor(out_features: int, tile: int) -> float:
    """Work of an event-driven kernel whose column tiles are `tile` wide, relative to the layer's
    width: narrow layers pay for whole tiles, so their crossover density is lower by this factor
    and one constant fits every output width."""
    return (-(-out_features // tile) * tile) / out_features


def mask_denser_than(mask: torch.Tensor, max_density: float) -> bool:
    """Whether more than ``max_density`` of a grad_mask's entries are set: past the measured
    crossover the spike layers compute the dense input gradient times the mask instead."""
    return int(count_set(mask)) > max_density * mask.numel()


def conv_width_factor(out_channels: int) -> float:
    """Relative cost per event of spike_conv2d's kernels against a dense convolution: each event
    pays a fixed overhead (indexing, one pass per kernel tap) besides its C_out multiply-adds,
    so narrow layers cross over at lower densities: 1 + 64 / C_out (fitted to the crossings
    measured at C_out = 16, 32 and 128, see _DEFAULTS)."""
    return 1.0 + 64.0 / out_channels


class DensityHistory:
    """Last observed input density per call site, read without waiting for the device.

    record() starts an asynchronous copy of the nonzero count to pinned host memory, unless a
    copy for the site is still in flight (a host running ahead of the GPU would otherwise replace
    it before it lands, forever); estimate() returns the newest count that has landed (or None).
    """

    def __init__(self, max_sites: int = 1024):
        self._pending: dict[object, tuple] = {}
        self._known: dict[object, float] = {}
        self._max_sites = max_sites

    def record(self, site: object, nnz: torch.Tensor, numel: int) -> None:
        if nnz.device.type != "cuda" or numel == 0:
            return
        self.estimate(site)  # collect a landed copy first
        if site in self._pending:
            return
        if len(self._pending) >= self._max_sites:
            self._pending.clear()
        host = torch.empty((), dtype=nnz.dtype, pin_memory=True)
        host.copy_(nnz, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending[site] = (host, event, numel)

    def estimate(self, site: object) -> float | None:
        pending = self._pending.get(site)
        if pending is not None and pending[1].query():
            host, _, numel = self._pending.pop(site)
            if len(self._known) >= self._max_sites:
                self._known.clear()
            self._known[site] = float(host.item()) / numel
        return self._known.get(site)


density_history = DensityHistory()
