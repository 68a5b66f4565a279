"""Spiking neuron modules on the fused lif op: LIF (multi-step), snnTorch's Leaky and
SpikingJelly's LIFNode, drop-in.

Parameters (beta, threshold) live on the module; membrane state is passed explicitly (LIF) or,
for the drop-in classes, kept the way their originals keep it, so ported code runs unchanged.
"""

from __future__ import annotations

import warnings
from typing import Optional, Union

import torch
from torch import Tensor, nn

from .._backend import check_backend, count_set
from .._checks import require_finite_number
from ..ops._validate import require_tensor
from ..ops.lif import lif
from ..ops.lif_reference import DEFAULT_SURROGATE_PARAM, RESETS, SURROGATES, lif_reference


def _parameter(value, learn: bool, name: str, positive: bool = False) -> Tensor:
    """beta or threshold as a tensor, checked once here: finite (NaN would pass the kernels'
    clamp), and > 0 for the threshold."""
    if isinstance(value, Tensor):
        require_tensor(value, name)
    elif isinstance(value, (bool, str)):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    try:  # numbers, numpy values and nested lists, as torch.as_tensor takes them
        tensor = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}") from None
    if not bool(torch.isfinite(tensor).all()) or (positive and not bool((tensor > 0).all())):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''} everywhere, got {value!r}")
    return nn.Parameter(tensor) if learn else tensor


class LIF(nn.Module):
    """Leaky integrate-and-fire neurons over a whole sequence, in one fused kernel.

    Input [T, B, ...] (or [B, T, ...] with batch_first); returns spikes of the same shape, or
    (spikes, final membrane) with return_membrane=True. beta and threshold are floats or tensors
    broadcast over the neuron dims, optionally learnable; fixed ones are buffers, in the
    state_dict unless persistent=False. ``grad_band`` truncates the surrogate to
    |membrane - threshold| < grad_band (a surrogate with compact support). See
    :func:`sparsespike.lif`.
    """

    def __init__(
        self,
        beta: Union[float, Tensor] = 0.9,
        threshold: Union[float, Tensor] = 1.0,
        reset: str = "subtract",
        surrogate: str = "fast_sigmoid",
        surrogate_param: Optional[float] = None,
        detach_reset: bool = True,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        batch_first: bool = False,
        convention: str = "snntorch",
        decay_input: bool = True,
        backend: Optional[str] = None,
        persistent: bool = True,
        grad_band: Optional[float] = None,
    ) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
        self._register("beta", _parameter(beta, learn_beta, "beta"), persistent)
        self._register("threshold", _parameter(threshold, learn_threshold, "threshold", positive=True), persistent)
        self.reset, self.surrogate, self.detach_reset = reset, surrogate, detach_reset
        self.surrogate_param = (
            DEFAULT_SURROGATE_PARAM[surrogate]
            if surrogate_param is None
            else require_finite_number(surrogate_param, "surrogate_param", positive=True)
        )
        self.grad_band = None if grad_band is None else require_finite_number(grad_band, "grad_band", positive=True)
        self.batch_first, self.convention, self.decay_input = batch_first, convention, decay_input
        self.backend = None if backend is None else check_backend(backend)
        self.band_fraction: Optional[Tensor] = None  # of the last band fire() made
        self._want_band, self._band = False, None

    @property
    def compact_support(self) -> bool:
        """Whether the surrogate is zero outside a band around the threshold (triangle, or a
        grad_band): neuron-steps outside it pass no gradient through their spikes."""
        return self.surrogate == "triangle" or self.grad_band is not None

    def _register(self, name: str, value: Tensor, persistent: bool) -> None:
        if isinstance(value, nn.Parameter):
            self.register_parameter(name, value)
        else:
            self.register_buffer(name, value, persistent=persistent)

    def _lif(self, current: Tensor, v0: Optional[Tensor], return_band: bool = False):
        return lif(
            current,
            self.beta,
            self.threshold,
            v0,
            reset=self.reset,
            detach_reset=self.detach_reset,
            surrogate=self.surrogate,
            surrogate_param=self.surrogate_param,
            grad_band=self.grad_band,
            convention=self.convention,
            decay_input=self.decay_input,
            return_band=return_band,
            backend=self.backend,
        )

    def forward(self, x: Tensor, v0: Optional[Tensor] = None, return_membrane: bool = False):
        current = x.transpose(0, 1) if self.batch_first else x
        want_band = self._needs_band(current, v0)
        out = self._lif(current, v0, return_band=want_band)
        if want_band:
            self._band = out.band.transpose(0, 1) if self.batch_first else out.band
            self.band_fraction = count_set(out.band) / out.band.numel()
        spikes = out.spikes.transpose(0, 1) if self.batch_first else out.spikes
        return (spikes, out.membrane) if return_membrane else spikes

    def fire(self, x: Tensor, v0: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """(spikes, band): ``self(x, v0)`` (hooks run), and where the surrogate has compact
        support and this call records a graph, the band-active set (bool, the spikes' shape),
        else None.

        Pass the band as the next spike layer's ``grad_mask``: a spike outside the band meets a
        zero surrogate in this layer's backward, so the consuming layer computes its input
        gradient only inside the band, and the result is the same. Each band also sets
        ``band_fraction`` (a 0-d tensor, no host sync) for the training log."""
        if type(self).forward is not LIF.forward:  # Leaky, LIFNode: their own calls and outputs
            raise TypeError(f"fire() runs LIF's multi-step forward; {type(self).__name__} has a forward of its own")
        self._want_band = True
        try:
            spikes = self(x, v0)
        finally:
            self._want_band = False
        band, self._band = self._band, None
        return spikes, band

    def _needs_band(self, current: Tensor, v0: Optional[Tensor]) -> bool:
        """Inside fire(), with compact support, when this call records a graph."""
        return (
            self._want_band
            and self.compact_support
            and torch.is_grad_enabled()
            and any(isinstance(t, Tensor) and t.requires_grad for t in (current, v0, self.beta, self.threshold))
        )

    def extra_repr(self) -> str:
        return (
            f"reset={self.reset!r}, surrogate={self.surrogate!r}({self.surrogate_param}), "
            + (f"grad_band={self.grad_band}, " if self.grad_band is not None else "")
            + f"convention={self.convention!r}, batch_first={self.batch_first}"
        )


def _surrogate_from_snntorch(spike_grad) -> Optional[tuple[str, float]]:
    """(name, parameter) for snnTorch's surrogate factories (or a name), None if unsupported.

    snnTorch's fast_sigmoid(slope), sigmoid(slope) and atan(alpha) return closures; their
    qualified name and captured parameter identify them."""
    if spike_grad is None:
        return "atan", 2.0  # snnTorch's default
    if isinstance(spike_grad, str):
        return (spike_grad, DEFAULT_SURROGATE_PARAM[spike_grad]) if spike_grad in SURROGATES else None
    qualname = getattr(spike_grad, "__qualname__", "")
    closure = getattr(spike_grad, "__closure__", None) or ()
    numbers = [c.cell_contents for c in closure if isinstance(c.cell_contents, (int, float))]
    for name in ("fast_sigmoid", "sigmoid", "atan"):
        if qualname.startswith(f"{name}.") and len(numbers) == 1:
            return name, float(numbers[0])
    return None


class Leaky(LIF):
    """snnTorch's ``Leaky``, on the fused kernel.

    Same constructor names, call and state_dict keys (beta, threshold, graded_spikes_factor,
    reset_mechanism_val), so snnTorch checkpoints load: ``spk, mem = leaky(x, mem)`` for one step
    ([B, ...]); ``leaky.multi_step(x)`` runs a whole [T, B, ...] sequence in one kernel call and
    returns (spikes [T, B, ...], final membrane). Surrogates: snnTorch's ``fast_sigmoid``,
    ``sigmoid`` and ``atan`` objects (default atan, alpha 2) or a sparsespike surrogate name; any
    other spike_grad (a custom autograd function of mem - threshold) runs the pure-torch
    reference loop with that function, with a warning.
    """

    def __init__(
        self,
        beta: Union[float, Tensor],
        threshold: Union[float, Tensor] = 1.0,
        spike_grad=None,
        init_hidden: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset_mechanism: str = "subtract",
        output: bool = False,
        backend: Optional[str] = None,
        *,
        grad_band: Optional[float] = None,
    ) -> None:
        surrogate = _surrogate_from_snntorch(spike_grad)
        custom = None
        if surrogate is None and grad_band is not None:
            raise ValueError(f"grad_band needs a fused surrogate; spike_grad {spike_grad!r} has none")
        if surrogate is None:
            warnings.warn(
                f"Leaky: spike_grad {spike_grad!r} has no fused equivalent; running the reference loop "
                "(fused: snntorch.surrogate.fast_sigmoid / sigmoid / atan, or a surrogate name)",
                RuntimeWarning,
                stacklevel=2,
            )
            custom = spike_grad
            surrogate = ("fast_sigmoid", 25.0)  # unused: the custom function decides
        if reset_mechanism not in RESETS:
            raise ValueError(f"reset_mechanism must be one of {RESETS}, got {reset_mechanism!r}")
        super().__init__(
            beta,
            threshold,
            reset=reset_mechanism,
            surrogate=surrogate[0],
            surrogate_param=surrogate[1],
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            backend=backend,
            grad_band=grad_band,
        )
        self.custom_spike_grad = custom
        self.init_hidden, self.output = init_hidden, output
        self.reset_mechanism = reset_mechanism
        # snnTorch's other state_dict entries (graded spikes are not supported: the factor stays 1)
        self.register_buffer("graded_spikes_factor", torch.tensor(1.0))
        self.register_buffer("reset_mechanism_val", torch.tensor(RESETS.index(reset_mechanism)))
        self.mem: Optional[Tensor] = None

    def init_leaky(self) -> None:
        """Forget the hidden membrane (init_hidden=True)."""
        self.mem = None

    def reset_mem(self) -> None:
        self.init_leaky()

    def forward(self, x: Tensor, mem: Optional[Tensor] = None):
        if self.init_hidden and mem is not None:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        state = self.mem if self.init_hidden else mem
        if state is not None and state.shape != x.shape:
            state = None  # snnTorch restarts from zeros when the shape changes
        spikes, membrane = self.multi_step(x.unsqueeze(0), state)
        spk = spikes[0]
        if self.init_hidden:
            self.mem = membrane
            return (spk, membrane) if self.output else spk
        return spk, membrane

    def multi_step(self, x: Tensor, mem: Optional[Tensor] = None):
        """A whole sequence [T, B, ...] in one fused call: (spikes [T, B, ...], final membrane)."""
        if float(self.graded_spikes_factor) != 1.0:
            raise NotImplementedError("graded_spikes_factor != 1 is not supported")
        if self.custom_spike_grad is None:
            return super().forward(x, mem, return_membrane=True)
        beta = self.beta.clamp(0.0, 1.0)
        v0 = torch.zeros_like(x[0]) if mem is None else mem
        spikes, membrane, _ = lif_reference(
            x, beta, self.threshold, v0, reset=self.reset_mechanism, spike=self.custom_spike_grad
        )
        return spikes, membrane


# SpikingJelly's surrogate classes whose gradient a fused surrogate computes exactly
_SPIKINGJELLY_SURROGATES = {"Sigmoid": "sigmoid", "ATan": "atan"}


def _surrogate_from_spikingjelly(fn, param: float) -> tuple[str, float]:
    """(name, parameter) for a surrogate name (with ``param``) or one of SpikingJelly's surrogate
    objects (activation_based.surrogate.Sigmoid(alpha), ATan(alpha): their gradients are the
    kernels' sigmoid and atan with that alpha)."""
    if isinstance(fn, str):
        return fn, param
    kind = type(fn).__name__
    if not type(fn).__module__.startswith("spikingjelly") or kind not in _SPIKINGJELLY_SURROGATES:
        raise ValueError(
            f"surrogate_function {kind} has no fused equivalent: pass SpikingJelly's surrogate.Sigmoid or "
            f"surrogate.ATan, or a surrogate name ({', '.join(SURROGATES)}) with surrogate_param"
        )
    if not getattr(fn, "spiking", True):
        raise ValueError(f"surrogate_function {kind}(spiking=False) fires through the smooth function; LIFNode spikes")
    return _SPIKINGJELLY_SURROGATES[kind], float(fn.alpha)


class LIFNode(nn.Module):
    """SpikingJelly's ``LIFNode`` (activation_based.neuron), on the fused kernel.

    tau (beta = 1 - 1/tau), v_threshold, v_reset (0.0: hard reset to zero; None: soft reset by
    subtraction), decay_input, detach_reset, step_mode "s" (one step [B, ...] a call, state in
    ``self.v``) or "m" (a sequence [T, B, ...]). Surrogate: sigmoid with alpha 4 by default
    (SpikingJelly's), a sparsespike surrogate name and parameter, or SpikingJelly's own
    ``surrogate_function=surrogate.Sigmoid(alpha)`` / ``surrogate.ATan(alpha)`` objects (also
    accepted in ``surrogate``'s place, where SpikingJelly's signature has them), so ported code runs.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: Optional[float] = 0.0,
        surrogate: str = "sigmoid",
        surrogate_param: float = 4.0,
        detach_reset: bool = False,
        step_mode: str = "s",
        backend: Optional[str] = None,
        *,
        surrogate_function=None,
        grad_band: Optional[float] = None,
    ) -> None:
        super().__init__()
        surrogate, surrogate_param = _surrogate_from_spikingjelly(
            surrogate if surrogate_function is None else surrogate_function, surrogate_param
        )
        if not (isinstance(tau, (int, float)) and tau > 1.0):
            raise ValueError(f"tau must be a number > 1, got {tau!r}")
        if v_reset not in (None, 0.0):
            raise ValueError(f"v_reset must be 0.0 (hard reset) or None (soft reset), got {v_reset!r}")
        if step_mode not in ("s", "m"):
            raise ValueError(f"step_mode must be 's' or 'm', got {step_mode!r}")
        self.tau, self.v_reset, self.step_mode = float(tau), v_reset, step_mode
        self.cell = LIF(
            1.0 - 1.0 / tau,
            v_threshold,
            reset="subtract" if v_reset is None else "zero",
            surrogate=surrogate,
            surrogate_param=surrogate_param,
            detach_reset=detach_reset,
            convention="spikingjelly",
            decay_input=decay_input,
            backend=backend,
            persistent=False,
            grad_band=grad_band,
        )  # SpikingJelly's LIFNode has an empty state_dict
        self.v: Union[float, Tensor] = 0.0

    def reset(self) -> None:
        """Forget the membrane state (SpikingJelly's functional.reset_net calls this)."""
        self.v = 0.0

    def forward(self, x: Tensor) -> Tensor:
        sequence = x.unsqueeze(0) if self.step_mode == "s" else x
        v0 = self.v if isinstance(self.v, Tensor) and self.v.shape == sequence.shape[1:] else None
        spikes, self.v = self.cell(sequence, v0, return_membrane=True)
        return spikes[0] if self.step_mode == "s" else spikes

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_reset={self.v_reset}, step_mode={self.step_mode!r}"


__all__ = ["LIF", "LIFNode", "Leaky"]
