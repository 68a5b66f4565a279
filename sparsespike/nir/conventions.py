"""How sparsespike's discrete-time LIF maps onto NIR's continuous-time neurons.

NIR's LIF is ``tau dv/dt = (v_leak - v) + r I``, a spike when ``v > v_threshold``, then
``v = v_reset``. A forward-Euler step of length ``dt`` gives
``v_t = (1 - dt/tau) v_{t-1} + (dt/tau) (v_leak + r I_t)``, which is sparsespike's
``v_t = beta v_{t-1} + I_t`` (snnTorch's convention, reset to zero) when

    beta = 1 - dt / tau,   r = tau / dt = 1 / (1 - beta),   v_leak = 0,   v_reset = 0.

So tau = dt / (1 - beta). dt is the caller's: NIR has none, snnTorch's exporter assumes 1e-4 s
and Norse 1e-3 s. An imported neuron with ``r dt / tau != 1`` scales its input current by that
factor. NIR has no subtract reset (sparsespike's and snnTorch's default); see
:func:`sparsespike.nir.export`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DEFAULT_DT = 1e-4  # seconds per step: snnTorch's exporter's, so graphs from both agree


class NIRLeaky(NamedTuple):
    """NIR LIF / LI parameters of one layer (arrays of the layer's neuron shape)."""

    tau: np.ndarray
    r: np.ndarray
    v_leak: np.ndarray


def check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a finite number of seconds > 0, got {dt!r}")
    return float(dt)


def beta_to_nir(beta: np.ndarray, dt: float, name: str) -> NIRLeaky:
    """tau, r, v_leak of neurons with decay ``beta`` (0 <= beta < 1) stepped every ``dt`` s."""
    beta = np.asarray(beta, dtype=np.float64)
    if not np.all((beta >= 0) & (beta < 1)):
        raise ValueError(f"{name}: beta must lie in [0, 1) to have a time constant, got {beta.min()}..{beta.max()}")
    tau = dt / (1.0 - beta)  # float64: 1 - dt / tau gives the float32 beta back exactly
    return NIRLeaky(tau, tau / dt, np.zeros_like(beta))


def nir_to_beta(tau: np.ndarray, r: np.ndarray, dt: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(beta, input scale r dt / tau) of NIR neurons with time constant ``tau`` stepped every ``dt`` s."""
    tau = np.asarray(tau, dtype=np.float64)
    # a tau written in float32 from beta = 0 may sit one rounding below dt
    if not np.all(np.isfinite(tau)) or not np.all(tau >= dt * (1 - 1e-6)):
        raise ValueError(
            f"node {name!r}: tau must be finite and >= dt ({dt:g} s) for a stable Euler step, got "
            f"{np.min(tau):g}..{np.max(tau):g}; pass the dt the graph was written for"
        )
    beta = np.clip(1.0 - dt / tau, 0.0, None)
    return beta.astype(np.float32), (np.asarray(r, dtype=np.float64) * dt / tau).astype(np.float32)
