"""Modern Hopfield layers on the modern_hopfield op: the study's M3 memory and a general layer."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._backend import check_backend
from .._checks import require_finite_number, require_int
from ..ops.modern_hopfield import modern_hopfield
from .linear import SpikeLinear


def unit_rows(x: Tensor) -> Tensor:
    """x / ||x|| over the last dim, with all-zero rows (a time step without spikes) mapped to 0
    with a unit-scale gradient. F.normalize divides by eps = 1e-12 there, so its gradient is
    1e12: one silent query made every other gradient vanish under clipping."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


class HopfieldMemory(nn.Module):
    """The study's M3 memory (Ramsauer et al. 2020 retrieval over learnable stored patterns).

    ``attention = softmax(q M^T / sqrt(d) / temperature)`` with the query q and the patterns M
    L2-normalised, ``retrieved = LayerNorm(attention M + x)`` (residual on the input x).
    Defaults: 256 patterns of width 512, temperature 0.1. A spike (or time-averaged spike) query
    keeps its support under normalisation, so on CPU the scores stay event-driven.

    Args:
        dim: query and pattern width d.
        num_patterns: stored patterns K (learnable, initialised N(0, 1): normalised anyway).
        temperature: softmax temperature on top of the 1/sqrt(d) scale.
        backend: "auto", "reference", "cpp", "triton", or None for the process default.
    """

    def __init__(
        self,
        dim: int = 512,
        num_patterns: int = 256,
        temperature: float = 0.1,
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        require_int(dim, "dim")
        require_int(num_patterns, "num_patterns")
        self.dim, self.temperature = dim, require_finite_number(temperature, "temperature", positive=True)
        self.patterns = nn.Parameter(torch.randn(num_patterns, dim, device=device, dtype=dtype))
        self.norm = nn.LayerNorm(dim, device=device, dtype=dtype)
        self.backend = None if backend is None else check_backend(backend)

    def forward(self, x: Tensor) -> Tensor:
        """x: [..., dim] (float, or bool/uint8 spikes) -> [..., dim]."""
        x = x if x.dtype.is_floating_point else x.to(self.patterns.dtype)
        query = unit_rows(x)
        memory = F.normalize(self.patterns, dim=-1)
        beta = 1.0 / math.sqrt(self.dim) / self.temperature
        retrieved = modern_hopfield(query, memory, beta, backend=self.backend)
        return self.norm(retrieved + x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_patterns={self.patterns.shape[0]}, temperature={self.temperature}"


class ModernHopfield(nn.Module):
    """A general modern Hopfield layer in the spirit of the hopfield-layers package.

    ``out = W_o retrieve(W_q query, W_k stored, W_v stored)``: the state (query) pattern is
    projected to ``hidden_size`` (SpikeLinear, so spike queries propagate event-driven), the stored
    patterns to keys (``hidden_size``) and values (``value_size``), then ``update_steps``
    retrievals in all: ``update_steps - 1`` updates xi <- softmax(beta xi K^T) K in the key space,
    then the read-out softmax(beta xi K^T) V, and an output projection. Stored patterns are passed to forward, or learnable
    (``num_patterns``). Any projection can be switched off (``hidden_size=None`` keeps the
    query/pattern width, ``value_size=None`` reads the keys, ``output_size=None`` no output layer).

    Args:
        query_size: width of the state patterns (queries).
        pattern_size: width of the stored patterns (defaults to query_size).
        hidden_size: association space width (None: no query/key projections; then
            pattern_size must equal query_size).
        value_size: value width (None: values are the keys).
        output_size: output projection width (None: none).
        num_patterns: if given, that many learnable stored patterns (forward takes none).
        beta: inverse temperature; 1/sqrt(association width) by default.
        update_steps: retrievals in all (>= 1; the last one reads the values).
        normalize: L2-normalise queries and keys before retrieval.
    """

    def __init__(
        self,
        query_size: int,
        pattern_size: Optional[int] = None,
        hidden_size: Optional[int] = None,
        value_size: Optional[int] = None,
        output_size: Optional[int] = None,
        num_patterns: Optional[int] = None,
        beta: Optional[float] = None,
        update_steps: int = 1,
        normalize: bool = False,
        bias: bool = True,
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        require_int(query_size, "query_size")
        for name, size in (
            ("pattern_size", pattern_size),
            ("hidden_size", hidden_size),
            ("value_size", value_size),
            ("output_size", output_size),
            ("num_patterns", num_patterns),
        ):
            if size is not None:
                require_int(size, name)
        if beta is not None:
            require_finite_number(beta, "beta", positive=True)
        pattern_size = query_size if pattern_size is None else pattern_size
        if hidden_size is None and pattern_size != query_size:
            raise ValueError(f"without hidden_size, pattern_size ({pattern_size}) must equal query_size ({query_size})")
        if isinstance(update_steps, bool) or not isinstance(update_steps, int) or update_steps < 1:
            raise ValueError(f"update_steps must be an integer >= 1, got {update_steps!r}")
        factory = dict(device=device, dtype=dtype)
        self.backend = None if backend is None else check_backend(backend)
        self.query_proj = self.key_proj = None
        if hidden_size is not None:
            self.query_proj = SpikeLinear(query_size, hidden_size, bias=bias, backend=backend, **factory)
            self.key_proj = nn.Linear(pattern_size, hidden_size, bias=bias, **factory)
        self.value_proj = None if value_size is None else nn.Linear(pattern_size, value_size, bias=bias, **factory)
        width_v = value_size if value_size is not None else (hidden_size or pattern_size)
        self.out_proj = None if output_size is None else nn.Linear(width_v, output_size, bias=bias, **factory)
        self.stored = None
        if num_patterns is not None:
            self.stored = nn.Parameter(torch.randn(num_patterns, pattern_size, **factory) / math.sqrt(pattern_size))
        self.association_size = hidden_size or query_size
        self.beta = 1.0 / math.sqrt(self.association_size) if beta is None else float(beta)
        self.update_steps, self.normalize = update_steps, normalize

    def forward(self, query: Tensor, stored: Optional[Tensor] = None) -> Tensor:
        """query: [..., query_size] (float or spikes); stored: [K, pattern_size] unless learnable."""
        if stored is None:
            if self.stored is None:
                raise ValueError("stored patterns are required (this layer has no learnable num_patterns)")
            stored = self.stored
        elif self.stored is not None:
            raise ValueError("this layer has learnable stored patterns; do not pass stored")
        dtype = stored.dtype
        if self.query_proj is not None:
            xi = self.query_proj(query)
            keys = self.key_proj(stored)
        else:
            xi, keys = query, stored
        values = keys if self.value_proj is None else self.value_proj(stored)
        if self.normalize:
            xi = unit_rows(xi if xi.dtype.is_floating_point else xi.to(dtype))
            keys = unit_rows(keys)
            values = keys if self.value_proj is None else values
        if self.update_steps > 1:
            xi = modern_hopfield(xi, keys, self.beta, keys, steps=self.update_steps - 1, backend=self.backend)
        out = modern_hopfield(xi, keys, self.beta, values, backend=self.backend)
        return out if self.out_proj is None else self.out_proj(out)

    def extra_repr(self) -> str:
        return f"association_size={self.association_size}, beta={self.beta:.4g}, update_steps={self.update_steps}"
