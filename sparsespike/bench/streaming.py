"""Streaming inference on the fused ops: the study's M1 fed one time step per call, each LIF's
membrane carried from call to call (``LIF(x, v0, return_membrane=True)``), as an always-on sensor
pipeline would run it. Same weights and arithmetic as ``model(x)`` over the whole sequence.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .eager import m1_layers


class FusedStreamM1(nn.Module):
    """step(x_t [B, ...], state) -> (output spikes [B, C], new state) on a sparsespike M1's own
    layers (its backend decides fused or reference)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.layers = m1_layers(model)
        self.model = model

    def step(self, x_t: Tensor, state: Optional[list] = None) -> tuple[Tensor, list]:
        state = state if state is not None else [None] * len(self.layers)
        h, new_state = x_t.unsqueeze(0), []  # a sequence of one step, [1, B, ...]
        for (layer, lif, flatten), v0 in zip(self.layers, state):
            if flatten:
                h = h.flatten(2)
            h, membrane = lif(layer(h), v0, return_membrane=True)
            new_state.append(membrane)
        return h[0], new_state

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, ...] stepped one call per time step -> output spike counts [B, C]."""
        state, counts = None, 0
        for t in range(x.shape[1]):
            out, state = self.step(x[:, t], state)
            counts = counts + out
        return counts
