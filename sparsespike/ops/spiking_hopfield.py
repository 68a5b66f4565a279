"""Spiking Hopfield attractor: Hebbian storage and recall by LIF neurons with event-driven
recurrent propagation, fused over time.

Storage (:func:`hebbian_weight`): binary patterns p in {0, 1}^N, bipolar xi = 2p - 1,
``W = (1/N) sum_p xi xi^T`` with a zero diagonal (symmetric).

Recall (:func:`spiking_hopfield_recall`), per cue (a batch of cues runs as independent networks sharing
the weight)::

    s_0 = cue,  v_0 = 0
    for t = 1..steps:
        A_i = sum_{j : s_{t-1,j} = 1} W[j, i]     event-driven: only the rows of spiking neurons
        I_i = 2 A_i - total_i,  total_i = sum_j W[j, i]
        r   = H(v - threshold)                    the previous spike (snnTorch's Leaky convention)
        v   = beta v + I - threshold r            reset="subtract" (default)
            | beta (1 - r) v + I                  reset="zero"
            | beta v + I                          reset="none"
        s_t = H(v - threshold)

I is the Hopfield local field of the bipolar state 2 s - 1, ``sum_j W[j, i] (2 s_j - 1)``,
computed from the active neurons only (``total`` is computed once per call). The cue is the
spike state entering the first step, an external stimulus: it drives step 1 but does not reset
anyone (the membranes start at 0, so r_1 = 0). Each neuron is a leaky integrator of its field:
with a threshold well below the field's scale (|I| is about 1 at a stored pattern when N >> P)
it spikes while its integrated field is positive, the sign rule of a Hopfield network, and the
leak gives the state inertia that damps the two-cycles of synchronous updates. The defaults
beta = 0.9 (the study's) and threshold = 0.05 settle within a few steps: at N = 1024 with 50
stored patterns and 20% of a cue's bits flipped, every one of 1000 recalls (10 seeds x 100
cues) settled at overlap >= 0.95 with its stored pattern, 99.5% of them on it exactly (measured;
the test asserts the issue's >= 95% of recalls).
The settled pattern is the majority of the last ``window`` steps (5 by default: a neuron is on
if it spiked in at least 3 of them; window=1 gives the last spike vector): with the subtract
reset, a neuron whose field lies in the narrow band (threshold (1 - beta), threshold (2 - beta))
neither stays silent nor fires every step but fires periodically, at a rate that is its
rate-coded state, so the last spike vector alone could catch it in a pause. ``settle_step`` is
the first step from which the spike vector no longer changed (``converged`` when that happened
before the last step); such a periodic neuron keeps a network from converging in that strict
sense while its majority pattern is stable.

Weights are read presynaptic-major: row j of ``weight`` holds neuron j's outgoing synapses, so
one spike reads one contiguous row (for the symmetric Hebbian matrix row j equals column j).

Exactness: every sum runs from 0 over j in increasing order, one add per active row, in the
reference, the C++ kernel and the Triton kernel alike, and the LIF expressions are evaluated in
the same order with the same roundings (no fused multiply-adds), so all three produce identical
spike trains and membranes, bit for bit, for any weight (not only Hebbian ones). The reference
pays for that order with a Python loop over the active neurons of each step: it is the oracle,
not a fast path.

Recall is inference: nothing is differentiable, the outputs never require grad and the op runs
under ``torch.no_grad``. Synaptic operations (events x fan-out N) are recorded in any active
:func:`sparsespike.count_synops` counter: the events are the cue's spikes and those of steps
1..steps-1 (each propagated to N targets); the one-time column-sum pass is not counted.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .._backend import cpp, empty_output, require_triton_kernels, resolve_backend
from .._backend import numpy_view as _np
from ..synops import counting
from ..synops import record as record_synops
from ._framework import KernelOp
from ._validate import (
    check_finite,
    data_checked,
    require_nonempty,
    require_same_device,
    require_tensor,
)

__all__ = [
    "SPIKING_HOPFIELD",
    "SpikingHopfieldOutput",
    "hebbian_weight",
    "pattern_overlap",
    "spiking_hopfield_recall",
    "spiking_hopfield_recall_reference",
]

RESETS = ("subtract", "zero", "none")


class SpikingHopfieldOutput(NamedTuple):
    spikes: Tensor  # [steps, B, N] (or [steps, N] for one cue), 0/1 in the weight's dtype
    settled: Tensor  # [B, N]: majority over the last `window` steps, 0/1 in the weight's dtype
    membrane: Tensor  # [B, N]: the membrane after the last step
    settle_step: Tensor  # [B] int64: first step index t with spikes[t:] all equal
    converged: Tensor  # [B] bool: settle_step < steps - 1 (the final state held for two steps)


# --------------------------------------------------------------------------- validation


def _check_binary(x: Tensor, name: str) -> None:
    """Values in {0, 1} (a bool tensor always is); reads the data, so skipped on CUDA unless
    SPARSESPIKE_CHECK_FINITE=1, like the non-finite checks."""
    if x.dtype == torch.bool:
        return
    if x.dtype.is_complex:
        raise TypeError(f"{name} must be bool, an integer or a floating-point tensor, got dtype {x.dtype}")
    if not data_checked(x):
        return
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{name} must be binary: every value 0 or 1 (bool, integer or float)")


def _check_scalar(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a Python float, got {type(value).__name__}")
    return float(value)


def check_recall_params(steps, beta, threshold, reset) -> tuple[int, float, float, int]:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    beta = _check_scalar(beta, "beta")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    threshold = _check_scalar(threshold, "threshold")
    if not (threshold > 0.0 and threshold < float("inf")):
        raise ValueError(f"threshold must be finite and > 0, got {threshold}")
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    return steps, beta, threshold, RESETS.index(reset)


def _check_weight(weight: Tensor) -> None:
    require_tensor(weight, "weight")
    if weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
        raise ValueError(f"weight must be a square matrix [N, N], got shape {tuple(weight.shape)}")
    require_nonempty(weight, "weight")
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")


# --------------------------------------------------------------------------- storage and overlap


def hebbian_weight(patterns: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
    """The Hebbian weight of binary patterns [P, N] (or one [N]): ``(1/N) sum_p xi xi^T`` with
    xi = 2p - 1, diagonal zeroed; [N, N], symmetric, float32 unless ``dtype`` says otherwise.

    patterns may be bool, integer or floating point, with every value 0 or 1. The integer
    products are summed exactly (any order) before the one division by N, so the result does not
    depend on the backend; weights of several calls add up to the weight of all the patterns at
    once up to that rounding (exactly when N is a power of two).
    """
    require_tensor(patterns, "patterns")
    if patterns.dim() not in (1, 2):
        raise ValueError(f"patterns must be [P, N] or [N], got shape {tuple(patterns.shape)}")
    require_nonempty(patterns, "patterns")
    _check_binary(patterns, "patterns")
    dtype = torch.float32 if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    rows = patterns.reshape(-1, patterns.shape[-1])
    n = rows.shape[1]
    # +-1 products summed in float64: exact integers up to 2^53, whatever order the matmul uses
    xi = rows.to(torch.float64) * 2.0 - 1.0
    weight = (xi.t() @ xi) / n
    weight.fill_diagonal_(0.0)
    return weight.to(dtype)


def pattern_overlap(a: Tensor, b: Tensor, bipolar: bool = False) -> Tensor:
    """Overlap of binary (0/1) vectors along the last dim (broadcast over the others): the fraction of
    equal bits, in [0, 1]; with ``bipolar`` the Hopfield overlap (1/N) sum (2a-1)(2b-1) =
    2 fraction - 1, in [-1, 1]. Float32 (float64 if either input is float64)."""
    require_tensor(a, "a")
    require_tensor(b, "b")
    if a.dim() < 1 or b.dim() < 1 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a and b must have the same last dimension, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    require_same_device(a, "a", b, "b")
    _check_binary(a, "a")  # a bipolar -1/+1 vector would otherwise count every -1 as a 1
    _check_binary(b, "b")
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    equal = ((a != 0) == (b != 0)).to(dtype).mean(-1)
    return 2.0 * equal - 1.0 if bipolar else equal


# --------------------------------------------------------------------------- reference


def _column_sums(weight: Tensor) -> Tensor:
    """total[i] = sum_j weight[j, i], one row at a time from 0, j increasing."""
    total = torch.zeros_like(weight[0])
    for j in range(weight.shape[0]):
        total.add_(weight[j])
    return total


def spiking_hopfield_recall_reference(
    weight: Tensor, cue: Tensor, steps: int, beta: float, threshold: float, reset: str = "subtract"
) -> tuple[Tensor, Tensor]:
    """(spikes [steps, B, N], final membrane [B, N]) of the recall, step by step in torch.

    cue [B, N] holds 0/1 in the weight's dtype. Sums follow the kernels' order exactly (see the
    module docstring): each cue's input adds the active neurons' weight rows one at a time in
    increasing index, as ``acc += mask_j * weight[j]`` over the neurons j active for any cue:
    the product is exact (mask_j is 0 or 1) and adding an exact zero leaves acc unchanged, so
    each cue sees exactly its own active rows' additions, fused multiply-add or not.
    """
    b = torch.tensor(beta, dtype=weight.dtype, device=weight.device)
    th = torch.tensor(threshold, dtype=weight.dtype, device=weight.device)
    total = _column_sums(weight)
    v = torch.zeros_like(cue)
    prev = cue
    spikes = []
    for _ in range(steps):
        mask = (prev != 0).to(v.dtype)
        acc = torch.zeros_like(v)
        for j in torch.nonzero(mask.any(0)).flatten().tolist():
            acc.addcmul_(mask[:, j : j + 1], weight[j])
        current = 2.0 * acc - total
        r = (v - th > 0).to(v.dtype)
        if reset == "subtract":
            v = b * v + current - th * r
        elif reset == "zero":
            v = b * (1.0 - r) * v + current
        else:
            v = b * v + current
        prev = (v - th > 0).to(v.dtype)
        spikes.append(prev)
    return torch.stack(spikes), v


# --------------------------------------------------------------------------- kernels


def _cpp_recall(weight, cue, steps, beta, threshold, reset):
    spikes = empty_output(cue, (steps, *cue.shape))
    v = torch.empty_like(cue)
    events = cpp().spiking_hopfield_recall(
        _np(weight), _np(cue), steps, beta, threshold, reset, spikes.numpy(), v.numpy(), torch.get_num_threads()
    )
    return spikes, v, torch.tensor(events, dtype=torch.int64)


def _recall_forward(path, adaptive, weight, cue, steps, beta, threshold, reset):
    """(spikes, membrane, events: the spikes propagated, int64, 0 unless counted) on one path;
    cue [B, N] 0/1 in the weight's dtype."""
    if path == "cpp":  # the kernel checks the weight and the cue before writing anything
        return _cpp_recall(weight, cue, steps, beta, threshold, reset)
    check_finite(weight, "weight")
    _check_binary(cue, "cue")
    if path == "triton":
        spikes, v = require_triton_kernels("spiking_hopfield").recall(weight, cue, steps, beta, threshold, reset)
    else:
        spikes, v = spiking_hopfield_recall_reference(weight, cue, steps, beta, threshold, RESETS[reset])
    # counted only for an active SynOp counter, the one reader (the C++ kernel counts for free)
    events = cue.count_nonzero() + spikes[:-1].count_nonzero() if counting() else cue.new_zeros((), dtype=torch.int64)
    return spikes, v, events


@torch.library.custom_op("sparsespike::spiking_hopfield_recall", mutates_args=())
def _recall_op(
    weight: Tensor, cue: Tensor, steps: int, beta: float, threshold: float, reset: int, backend: str
) -> tuple[Tensor, Tensor, Tensor]:
    """(spikes [steps, B, N], membrane [B, N], events); cue [B, N] 0/1 in the weight's dtype.
    For torch.compile (inference only: no autograd is registered)."""
    route = SPIKING_HOPFIELD.route(backend, weight)
    return _recall_forward(route.path, route.adaptive, weight, cue, steps, beta, threshold, reset)


@_recall_op.register_fake
def _recall_fake(weight, cue, steps, beta, threshold, reset, backend):
    return cue.new_empty((steps, *cue.shape)), torch.empty_like(cue), cue.new_empty((), dtype=torch.int64)


SPIKING_HOPFIELD = KernelOp(
    "spiking_hopfield_recall",
    forward=_recall_forward,
    what="weights",
    triton_module="spiking_hopfield",
    custom_op=_recall_op,
    reference_in_custom_op=True,  # compiled graphs run it in the op (its loop is data-dependent)
)


def _settling(spikes: Tensor) -> tuple[Tensor, Tensor]:
    """(settle_step [B], converged [B]) of spikes [steps, B, N]."""
    steps, batch = spikes.shape[0], spikes.shape[1]
    changed = (spikes[1:] != spikes[:-1]).any(-1)  # [steps - 1, B]: step t + 1 differs from t
    index = torch.arange(1, steps, device=spikes.device).unsqueeze(1)
    settle = (changed * index).amax(0) if steps > 1 else torch.zeros(batch, dtype=torch.int64, device=spikes.device)
    return settle, settle < steps - 1


def spiking_hopfield_recall(
    weight: Tensor,
    cue: Tensor,
    steps: int = 20,
    beta: float = 0.9,
    threshold: float = 0.05,
    *,
    reset: str = "subtract",
    window: int = 5,
    backend: Optional[str] = None,
) -> SpikingHopfieldOutput:
    """Recall from ``cue`` by LIF neurons coupled through ``weight`` (dynamics in the module
    docstring), the recurrent propagation and the LIF update fused over all steps.

    Args:
        weight: [N, N] floating point, finite; row j = neuron j's outgoing weights (the
            Hebbian :func:`hebbian_weight` is symmetric). Kernels take float32 and float64.
        cue: [B, N] or [N], binary (bool, integer or float with values 0/1): the spike state
            entering the first step.
        steps: time steps, >= 1.
        beta: membrane decay in [0, 1]; threshold: > 0, in units of the local field (about 1 in
            magnitude at a stored pattern); reset: "subtract", "zero" or "none".
        window: the settled pattern is the majority vote of the last ``window`` steps (at most
            ``steps``; strictly more than half of them spiking); 1 gives the last spike vector.
        backend: "auto", "reference", "cpp" (CPU), "triton" (CUDA, or CPU under
            TRITON_INTERPRET=1), or None for the process default. All give identical results.

    Returns:
        SpikingHopfieldOutput(spikes [steps, B, N], settled [B, N], membrane [B, N], settle_step [B],
        converged [B]), the batch dim dropped for a 1-D cue; spikes, settled and membrane in the
        weight's dtype. No gradients (inference only).
    """
    _check_weight(weight)
    require_tensor(cue, "cue")
    n = weight.shape[0]
    if cue.dim() not in (1, 2) or cue.shape[-1] != n:
        raise ValueError(f"cue must be [B, {n}] or [{n}] for a weight of {n} neurons, got shape {tuple(cue.shape)}")
    require_nonempty(cue, "cue")
    require_same_device(cue, "cue", weight, "weight")
    if not torch.compiler.is_compiling():  # traced: the op checks the data when it runs
        _check_binary(cue, "cue")
    steps, beta, threshold, reset_index = check_recall_params(steps, beta, threshold, reset)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    route = SPIKING_HOPFIELD.route(resolve_backend(backend, weight.device), weight)

    with torch.no_grad():
        weight = weight.detach()
        batch_cue = cue.detach().reshape(-1, n).to(weight.dtype).contiguous()
        spikes, v, events = SPIKING_HOPFIELD(route, weight, batch_cue, steps, beta, threshold, reset_index)
        record_synops("spiking_hopfield_recall", events, n)
        settle, converged = _settling(spikes)
        recent = spikes[-min(window, steps) :]
        settled = (2 * recent.sum(0) > recent.shape[0]).to(spikes.dtype)
    if cue.dim() == 1:
        spikes, settled, v, settle, converged = spikes[:, 0], settled[0], v[0], settle[0], converged[0]
    return SpikingHopfieldOutput(spikes, settled, v, settle, converged)
