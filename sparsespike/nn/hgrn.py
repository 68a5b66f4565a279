"""HGRN: the Hierarchically Gated Recurrent Network (Qin et al., NeurIPS 2023), real-valued, on
the fused hgrn_scan op; a layer (:class:`HGRN`), a pre-norm residual block (:class:`HGRNBlock`)
and a stack of blocks whose forget-gate lower bounds rise with depth (:class:`HGRNStack`).

The layer follows flash-linear-attention's HGRNAttention: from the input, projections i, f and an
output gate o; forget gate F = lb + (1 - lb) sigmoid(f) with lower bound lb, g = log F;
candidate c = silu(i) * (1 - F); h_t = F_t h_{t-1} + c_t (hgrn_scan); output
out_proj(RMSNorm(h) * silu(o)). The three input projections are one Linear (a SpikeLinear for
spike input, so the spikes are compacted once) whose output splits into i, f, o.

Sequences are time-major [T, ..., d_model] (batch_first: [B, T, ..., d_model]). The recurrent
state [..., inner] is passed explicitly; ``step`` runs one time step for online inference and
equals the sequence mode step by step.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._backend import check_backend
from .._checks import require_finite_number, require_int
from ..ops._validate import data_checked
from ..ops.hgrn_scan import hgrn_scan
from .linear import SpikeLinear

__all__ = ["HGRN", "HGRNBlock", "HGRNStack"]


def _check_lower_bound(bound) -> None:
    """A lower bound passed to forward must be in [0, 1]: out of range (or NaN) it would make a
    forget gate above 1, reported as hgrn_scan's g. Tensors are read on CUDA only with
    SPARSESPIKE_CHECK_FINITE=1 (a host sync), as every data check."""
    if not isinstance(bound, Tensor):
        if not 0.0 <= require_finite_number(bound, "lower_bound") <= 1.0:
            raise ValueError(f"lower_bound passed to forward must be in [0, 1], got {bound}")
        return
    if torch.compiler.is_compiling() or not data_checked(bound):
        return
    if not bool(((bound >= 0) & (bound <= 1)).all()):
        raise ValueError("lower_bound passed to forward must be in [0, 1] everywhere")


class HGRN(nn.Module):
    """One HGRN token-mixing layer (fla's HGRNAttention, real-valued) over a whole sequence.

    Args:
        d_model: input and output features.
        expand_ratio: the recurrence runs on inner = int(d_model * expand_ratio) channels.
        spiking_input: the input is a spike tensor (bool, uint8 or 0/1 float): the input
            projection is a :class:`SpikeLinear` (event-driven), else an ``nn.Linear``.
        lower_bound: fixed lower bound of the forget gate, a float in [0, 1) (None or 0: none,
            the gate spans (0, 1)); with learn_lower_bound it is the initial value of a learnable
            per-channel bound sigmoid(lower_bound_logit), and must then be in (0, 1).
            :class:`HGRNStack` passes each layer its bound at call time instead.
        learn_lower_bound: see lower_bound.
        bias: biases on the projections (fla: none).
        norm_eps: epsilon of the output RMSNorm.
        batch_first: sequences are [B, T, ..., d_model] instead of [T, B, ..., d_model].
        backend: for hgrn_scan (and SpikeLinear): "auto", "reference", "cpp", "triton", or None
            for the process default.
        device, dtype: of the parameters.

    forward(x, state=None, lower_bound=None, return_state=False) -> y, or (y, final state);
    step(x_t, state=None, lower_bound=None) -> (y_t, state) for one time step x_t [..., d_model].
    """

    def __init__(
        self,
        d_model: int,
        expand_ratio: float = 1.0,
        spiking_input: bool = False,
        lower_bound: Optional[float] = None,
        learn_lower_bound: bool = False,
        bias: bool = False,
        norm_eps: float = 1e-5,
        batch_first: bool = False,
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        require_int(d_model, "d_model")
        inner = int(d_model * expand_ratio)
        if inner < 1:
            raise ValueError(f"expand_ratio {expand_ratio} leaves no inner channels for d_model {d_model}")
        self.d_model, self.inner_size, self.expand_ratio = d_model, inner, expand_ratio
        self.spiking_input, self.batch_first = bool(spiking_input), bool(batch_first)
        self.backend = None if backend is None else check_backend(backend)
        factory = dict(device=device, dtype=dtype)
        if spiking_input:
            self.in_proj = SpikeLinear(d_model, 3 * inner, bias=bias, backend=self.backend, **factory)
        else:
            self.in_proj = nn.Linear(d_model, 3 * inner, bias=bias, **factory)
        self.out_norm = nn.RMSNorm(inner, eps=norm_eps, **factory)
        self.out_proj = nn.Linear(inner, d_model, bias=bias, **factory)
        self._init_lower_bound(lower_bound, learn_lower_bound, factory)

    def _init_lower_bound(self, lower_bound, learn: bool, factory: dict) -> None:
        self.lower_bound_logit: Optional[nn.Parameter] = None
        self.fixed_lower_bound: Optional[float] = None
        if learn:
            if lower_bound is None or not 0.0 < float(lower_bound) < 1.0:
                raise ValueError(f"learn_lower_bound needs an initial lower_bound in (0, 1), got {lower_bound!r}")
            logit = math.log(lower_bound) - math.log1p(-lower_bound)
            self.lower_bound_logit = nn.Parameter(torch.full((self.inner_size,), logit, **factory))
        elif lower_bound is not None:
            if not 0.0 <= float(lower_bound) < 1.0:
                raise ValueError(f"lower_bound must be in [0, 1), got {lower_bound!r}")
            self.fixed_lower_bound = float(lower_bound) if lower_bound > 0 else None

    def _lower_bound(self, external: Optional[Tensor]) -> Union[None, float, Tensor]:
        own = self.fixed_lower_bound if self.lower_bound_logit is None else torch.sigmoid(self.lower_bound_logit)
        if external is None:
            return own
        if own is not None:
            raise ValueError("this HGRN has its own lower_bound; do not pass one to forward")
        _check_lower_bound(external)
        return external

    def gates(self, f: Tensor, lower_bound: Union[None, float, Tensor]) -> tuple[Tensor, Tensor]:
        """(g = log F, 1 - F) for the forget-gate pre-activation f, F = lb + (1 - lb) sigmoid(f).
        Both are computed without cancellation: 1 - F = (1 - lb) sigmoid(-f) and g = log1p of
        its negative (logsigmoid(f) without a bound)."""
        if lower_bound is None:
            return F.logsigmoid(f), torch.sigmoid(-f)
        # clamped: a bound that rounds to just above 1 (HGRNStack's last layer, in low precision)
        # must give g = 0, not a forget gate above 1
        one_minus = ((1 - lower_bound) * torch.sigmoid(-f)).clamp_min(0)
        return torch.log1p(-one_minus), one_minus

    def _sequence(self, x: Tensor, state: Optional[Tensor], lower_bound: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """Time-major x [T, ..., d_model] -> (y [T, ..., d_model], final state [..., inner])."""
        if x.dim() < 2 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be [T, ..., {self.d_model}], got shape {tuple(x.shape)}")
        i, f, o = self.in_proj(x).chunk(3, dim=-1)
        g, one_minus = self.gates(f, self._lower_bound(lower_bound))
        if state is not None and state.shape != i.shape[1:]:
            raise ValueError(f"state must have shape {tuple(i.shape[1:])}, got {tuple(state.shape)}")
        h, h_final = hgrn_scan(F.silu(i) * one_minus, g, state, backend=self.backend)
        return self.out_proj(self.out_norm(h) * F.silu(o)), h_final

    def forward(
        self,
        x: Tensor,
        state: Optional[Tensor] = None,
        lower_bound: Optional[Tensor] = None,
        return_state: bool = False,
    ):
        seq = x.transpose(0, 1) if self.batch_first else x
        y, h_final = self._sequence(seq, state, lower_bound)
        y = y.transpose(0, 1) if self.batch_first else y
        return (y, h_final) if return_state else y

    def step(self, x_t: Tensor, state: Optional[Tensor] = None, lower_bound: Optional[Tensor] = None):
        """One time step x_t [..., d_model] from state [..., inner] (zeros when None):
        returns (y_t [..., d_model], new state)."""
        y, h_final = self._sequence(x_t.unsqueeze(0), state, lower_bound)
        return y[0], h_final

    def extra_repr(self) -> str:
        parts = [f"d_model={self.d_model}", f"inner_size={self.inner_size}"]
        if self.spiking_input:
            parts.append("spiking_input=True")
        if self.lower_bound_logit is not None:
            parts.append("lower_bound=learnable")
        elif self.fixed_lower_bound is not None:
            parts.append(f"lower_bound={self.fixed_lower_bound}")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.backend is not None:
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)


class GatedMLP(nn.Module):
    """The HGRN block's channel mixer (a SwiGLU MLP): down(silu(gate(x)) * up(x)), hidden
    int(d_model * mlp_ratio * 2 / 3) features (as fla's GatedMLP, without its rounding to 256)."""

    def __init__(self, d_model: int, mlp_ratio: float = 4.0, bias: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        hidden = max(1, int(d_model * mlp_ratio * 2 / 3))
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=bias, device=device, dtype=dtype)
        self.down = nn.Linear(hidden, d_model, bias=bias, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class HGRNBlock(nn.Module):
    """Pre-norm residual block: x + HGRN(RMSNorm(x)), then x + MLP(RMSNorm(x)) (no MLP with
    mlp_ratio=0). With spiking_input the first norm is skipped (it would turn the spikes into
    floats) and the HGRN's input projection is event-driven; the residual adds the spikes.
    Time-major; see :class:`HGRN` for the arguments."""

    def __init__(
        self,
        d_model: int,
        expand_ratio: float = 1.0,
        mlp_ratio: float = 4.0,
        spiking_input: bool = False,
        norm_eps: float = 1e-6,
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.attn_norm = nn.Identity() if spiking_input else nn.RMSNorm(d_model, eps=norm_eps, **factory)
        self.attn = HGRN(d_model, expand_ratio, spiking_input=spiking_input, backend=backend, **factory)
        self.mlp_norm = nn.RMSNorm(d_model, eps=norm_eps, **factory) if mlp_ratio else None
        self.mlp = GatedMLP(d_model, mlp_ratio, **factory) if mlp_ratio else None

    def forward(
        self, x: Tensor, state: Optional[Tensor] = None, lower_bound: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Time-major x [T, ..., d_model] -> (y, final state)."""
        mixed, h_final = self.attn._sequence(self.attn_norm(x), state, lower_bound)
        x = x + mixed
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x, h_final


class HGRNStack(nn.Module):
    """n_layers HGRN blocks with forget-gate lower bounds rising with depth, and a final RMSNorm.

    The bounds come from one learnable [n_layers, inner] parameter Gamma (zeros at init) as in
    the paper and fla's HGRNModel: softmax over the layer dimension, then a cumulative sum
    shifted so that the first layer's bound is 0: lb_k = sum_{j=1..k} softmax(Gamma)_j
    (computed without the subtraction, so every later bound stays positive). Lower layers
    may forget fast; upper ones are pushed towards long memory.

    Args:
        d_model, n_layers: width and depth.
        expand_ratio, mlp_ratio, norm_eps, backend: per block (see :class:`HGRNBlock`).
        spiking_input: the input is a spike tensor; the first block projects it event-driven.
        use_lower_bound: False trains every layer without a bound (gates in (0, 1)).
        batch_first: [B, T, ..., d_model] instead of time-major.

    forward(x, states=None, return_state=False) -> y, or (y, list of final states per layer);
    step(x_t, states=None) -> (y_t, states).
    """

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        expand_ratio: float = 1.0,
        mlp_ratio: float = 4.0,
        spiking_input: bool = False,
        use_lower_bound: bool = True,
        norm_eps: float = 1e-6,
        batch_first: bool = False,
        backend: Optional[str] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        require_int(n_layers, "n_layers")
        factory = dict(device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            HGRNBlock(
                d_model,
                expand_ratio,
                mlp_ratio,
                spiking_input=spiking_input and k == 0,
                norm_eps=norm_eps,
                backend=backend,
                **factory,
            )
            for k in range(n_layers)
        )
        inner = self.layers[0].attn.inner_size
        self.lower_bounds = nn.Parameter(torch.zeros(n_layers, inner, **factory)) if use_lower_bound else None
        self.norm = nn.RMSNorm(d_model, eps=norm_eps, **factory)
        self.d_model, self.n_layers, self.batch_first = d_model, n_layers, bool(batch_first)

    def layer_lower_bounds(self) -> list[Optional[Tensor]]:
        """Each layer's lower bound [inner] (None for the first layer and without bounds)."""
        if self.lower_bounds is None:
            return [None] * self.n_layers
        weights = self.lower_bounds.softmax(dim=0)
        rising = weights[1:].cumsum(dim=0)
        return [None] + list(rising.unbind(0))

    def _sequence(self, x: Tensor, states: Optional[Sequence[Optional[Tensor]]]) -> tuple[Tensor, list[Tensor]]:
        if states is None:
            states = [None] * self.n_layers
        if len(states) != self.n_layers:
            raise ValueError(f"states must hold one state per layer ({self.n_layers}), got {len(states)}")
        finals = []
        for layer, state, bound in zip(self.layers, states, self.layer_lower_bounds()):
            x, h_final = layer(x, state, bound)
            finals.append(h_final)
        return self.norm(x), finals

    def forward(self, x: Tensor, states: Optional[Sequence[Optional[Tensor]]] = None, return_state: bool = False):
        seq = x.transpose(0, 1) if self.batch_first else x
        y, finals = self._sequence(seq, states)
        y = y.transpose(0, 1) if self.batch_first else y
        return (y, finals) if return_state else y

    def step(self, x_t: Tensor, states: Optional[Sequence[Optional[Tensor]]] = None) -> tuple[Tensor, list[Tensor]]:
        """One time step x_t [..., d_model] -> (y_t, the new state of every layer)."""
        y, finals = self._sequence(x_t.unsqueeze(0), states)
        return y[0], finals

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_layers={self.n_layers}, lower_bounds={self.lower_bounds is not None}"
