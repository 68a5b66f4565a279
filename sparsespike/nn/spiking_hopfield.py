"""SpikingHopfield: a Hopfield attractor memory of LIF neurons on the fused recall op."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._backend import check_backend
from .._checks import require_int
from ..ops.spiking_hopfield import (
    SpikingHopfieldOutput,
    check_recall_params,
    hebbian_weight,
    pattern_overlap,
    spiking_hopfield_recall,
)


class SpikingHopfield(nn.Module):
    """A spiking Hopfield network of ``n_neurons`` LIF neurons.

    ``store(patterns)`` adds binary patterns [P, N] with the Hebbian rule
    ``W += (1/N) sum_p xi xi^T`` (xi = 2p - 1, zero diagonal); ``recall(cue, steps)`` runs the
    neurons from a binary cue with event-driven recurrent propagation through W (see
    :func:`sparsespike.ops.spiking_hopfield_recall` for the dynamics) and returns the spike trains and
    the settled pattern. The weight is a buffer (in the state_dict, not a parameter: recall is
    inference only), with the count of stored patterns.

    Args:
        n_neurons: N.
        beta: membrane decay in [0, 1] (0.9, the study's LIF default).
        threshold: firing threshold in units of the local field (0.05: spike while the
            integrated field is positive, with a small margin).
        reset: "subtract" (default), "zero" or "none".
        backend: "auto", "reference", "cpp", "triton", or None for the process default.
        device, dtype: of the weight (float32 by default).
    """

    def __init__(
        self,
        n_neurons: int,
        beta: float = 0.9,
        threshold: float = 0.05,
        reset: str = "subtract",
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        require_int(n_neurons, "n_neurons")
        _, beta, threshold, _ = check_recall_params(1, beta, threshold, reset)
        dtype = torch.float32 if dtype is None else dtype
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self.n_neurons = n_neurons
        self.beta, self.threshold, self.reset = beta, threshold, reset
        self.backend = None if backend is None else check_backend(backend)
        self.register_buffer("weight", torch.zeros(n_neurons, n_neurons, device=device, dtype=dtype))
        self.register_buffer("n_patterns", torch.zeros((), dtype=torch.int64, device=device))

    @torch.no_grad()
    def store(self, patterns: Tensor) -> "SpikingHopfield":
        """Adds binary patterns [P, N] (or one [N]; bool, integer or float 0/1) to the weight."""
        if not isinstance(patterns, Tensor):
            raise TypeError(f"patterns must be a torch.Tensor, got {type(patterns).__name__}")
        if patterns.dim() not in (1, 2) or patterns.shape[-1] != self.n_neurons:
            raise ValueError(
                f"patterns must be [P, {self.n_neurons}] or [{self.n_neurons}], got shape {tuple(patterns.shape)}"
            )
        if patterns.device != self.weight.device:
            raise ValueError(f"patterns is on {patterns.device} but the weight is on {self.weight.device}")
        self.weight += hebbian_weight(patterns, dtype=self.weight.dtype)
        self.n_patterns += 1 if patterns.dim() == 1 else patterns.shape[0]
        return self

    @torch.no_grad()
    def clear(self) -> "SpikingHopfield":
        """Forgets every stored pattern (zero weight)."""
        self.weight.zero_()
        self.n_patterns.zero_()
        return self

    def recall(self, cue: Tensor, steps: int = 20, window: int = 5) -> SpikingHopfieldOutput:
        """Runs the network from ``cue`` ([B, N] or [N], binary) for ``steps`` steps:
        SpikingHopfieldOutput(spikes [steps, B, N], settled [B, N] (majority of the last ``window``
        steps), membrane [B, N], settle_step [B], converged [B])."""
        return spiking_hopfield_recall(
            self.weight,
            cue,
            steps,
            self.beta,
            self.threshold,
            reset=self.reset,
            window=window,
            backend=self.backend,
        )

    def forward(self, cue: Tensor, steps: int = 20, window: int = 5) -> SpikingHopfieldOutput:
        return self.recall(cue, steps, window)

    @staticmethod
    def overlap(a: Tensor, b: Tensor, bipolar: bool = False) -> Tensor:
        """Fraction of equal bits of binary a and b along the last dim (bipolar: 2 f - 1)."""
        return pattern_overlap(a, b, bipolar)

    def extra_repr(self) -> str:
        backend = "" if self.backend is None else f", backend={self.backend!r}"
        return (
            f"n_neurons={self.n_neurons}, beta={self.beta}, threshold={self.threshold}, reset={self.reset!r}{backend}"
        )


__all__ = ["SpikingHopfield"]
