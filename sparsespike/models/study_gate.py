"""The reference code's "HGRN" (Models/hgrn_layer.py, ImprovedHGRNGate): a GRU-like gate.

    r  = sigmoid(LN_r(W_r [x, h]))
    z  = sigmoid(LN_z(W_z [x, h]))
    h~ = tanh(LN_h(W_h [x, r * h]))
    h' = (1 - z) h + z h~

The study applies it once, to the time-averaged features, with h = 0. It is not the HGRN of Qin
et al. (see :class:`sparsespike.nn.HGRN`); it is kept for exact reproduction (``memory="study"``).
Parameter names and initialisation (xavier-uniform weights, nn.Linear's default biases) are the
reference's, so its checkpoints load.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["StudyGate"]


class StudyGate(nn.Module):
    """forward(x [B, input_size], h=None [B, hidden_size]) -> h' [B, hidden_size] (h = 0 if None)."""

    def __init__(self, input_size: int = 512, hidden_size: int = 512) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W_r = nn.Linear(input_size + hidden_size, hidden_size)
        self.W_z = nn.Linear(input_size + hidden_size, hidden_size)
        self.W_h = nn.Linear(input_size + hidden_size, hidden_size)
        for linear in (self.W_r, self.W_z, self.W_h):
            nn.init.xavier_uniform_(linear.weight)
        self.ln_r = nn.LayerNorm(hidden_size)
        self.ln_z = nn.LayerNorm(hidden_size)
        self.ln_h = nn.LayerNorm(hidden_size)

    def forward(self, x: Tensor, h: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must be [B, {self.input_size}], got shape {tuple(x.shape)}")
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        elif h.shape != (x.shape[0], self.hidden_size):
            raise ValueError(f"h must be [{x.shape[0]}, {self.hidden_size}], got shape {tuple(h.shape)}")
        combined = torch.cat([x, h], dim=1)
        r = torch.sigmoid(self.ln_r(self.W_r(combined)))
        z = torch.sigmoid(self.ln_z(self.W_z(combined)))
        candidate = torch.tanh(self.ln_h(self.W_h(torch.cat([x, r * h], dim=1))))
        return (1 - z) * h + z * candidate

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"
