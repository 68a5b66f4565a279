"""The study's spiking encoders (visual and audio) and output head, time-major on the engine.

Every LIF is the study's snnTorch ``Leaky(beta=0.9, spike_grad=fast_sigmoid(slope=25))``: threshold
1.0, reset by subtraction from the previous step's spike (detached), fire on v > threshold, zero
initial membrane per forward. Our ``surrogate_param`` for "fast_sigmoid" is snnTorch's ``slope``
(both: d spike / du = 1 / (1 + slope |u|)^2), so 25.0 matches exactly.

The surrogate is selectable (:class:`Surrogate`): with one of compact support (a ``grad_band``,
or "triangle") each LIF also gives its band-active set, and the layer reading its spikes
computes its input gradient only there (``grad_mask``): the same gradient, sparse. A grad_band
truncates only the hidden LIFs, whose bands make the next layer's input gradient sparse; the
encoder's output layer and the head keep the whole surrogate, whose tail is what lets a silent
output neuron learn to fire (truncated there, the head's band emptied and M1 on randman stayed
at 10.0-19.0% in 8 epochs at band 0.05 and 0.2, against 78.4-81.6% exact; see docs/study.md).

Unlike the reference code (a Python loop over time, one layer call per step), each layer runs the
whole sequence at once: conv / linear layers see T folded into the batch ([T, B, ...] leading
dims), then one fused multi-step LIF call over [T, B, ...]. Both orders compute the same
recurrence, since a layer's input at step t depends only on the layer below at step t.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

from torch import Tensor, nn

from ..nn import LIF, SpikeConv2d, SpikeLinear
from ..ops.lif import lif

__all__ = ["STUDY_SURROGATE", "AudioEncoder", "SpikingHead", "Surrogate", "VisualEncoder", "study_lif"]

# the study's neuron (Models/backbones.py of the reference code)
STUDY_BETA = 0.9
STUDY_THRESHOLD = 1.0
STUDY_SLOPE = 25.0


class Surrogate(NamedTuple):
    """The neurons' surrogate gradient: its name, parameter (None: the study's slope 25 for
    fast_sigmoid, else the surrogate's default) and grad_band (None: not truncated)."""

    name: str = "fast_sigmoid"
    param: Optional[float] = None
    grad_band: Optional[float] = None

    def lif_options(self, truncate: bool = True) -> dict:
        """The LIF's surrogate options; truncate=False leaves out the grad_band."""
        param = STUDY_SLOPE if self.param is None and self.name == "fast_sigmoid" else self.param
        return {"surrogate": self.name, "surrogate_param": param, "grad_band": self.grad_band if truncate else None}


STUDY_SURROGATE = Surrogate()  # fast sigmoid, slope 25, exact


def study_lif(backend: Optional[str] = None, surrogate: Surrogate = STUDY_SURROGATE, truncate: bool = True) -> LIF:
    """The study's LIF (snnTorch Leaky, beta 0.9, threshold 1, subtract reset, fast sigmoid 25),
    with another surrogate if given; truncate=False: without its grad_band (output layers)."""
    return LIF(
        beta=STUDY_BETA,
        threshold=STUDY_THRESHOLD,
        reset="subtract",
        detach_reset=True,
        convention="snntorch",
        backend=backend,
        **surrogate.lif_options(truncate),
    )


def _flat_band(band: Optional[Tensor]) -> Optional[Tensor]:
    return None if band is None else band.flatten(2)


def _positive_ints(values, name: str, length: Optional[int] = None) -> tuple[int, ...]:
    values = tuple(values)
    if (length is not None and len(values) != length) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    ):
        size = f"{length} " if length is not None else ""
        raise ValueError(f"{name} must be {size}positive ints, got {values!r}")
    return values


class VisualEncoder(nn.Module):
    """Conv(C,64,3,p1) -> LIF -> Conv(64,128,3,p1) -> LIF -> Linear(128*H*W, 512) -> LIF.

    forward(x [T, B, C, H, W], time-major) -> the 512-d spike layer [T, B, feature_size].

    Args:
        input_shape: (C, H, W) per time step; the study's N-MNIST frames (2, 34, 34).
        channels: output channels of the two 3x3 convolutions (64, 128).
        feature_size: the spike layer's width (512).
        backend: for every sparsespike op ("auto", "reference", "cpp", "triton" or None).
        surrogate: the LIFs' surrogate gradient (the study's by default).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (2, 34, 34),
        channels: Sequence[int] = (64, 128),
        feature_size: int = 512,
        backend: Optional[str] = None,
        surrogate: Surrogate = STUDY_SURROGATE,
    ) -> None:
        super().__init__()
        self.input_shape = _positive_ints(input_shape, "input_shape", 3)
        self.channels = _positive_ints(channels, "channels", 2)
        (self.feature_size,) = _positive_ints((feature_size,), "feature_size")
        c, h, w = self.input_shape
        self.conv1 = SpikeConv2d(c, self.channels[0], 3, padding=1, backend=backend)
        self.lif1 = study_lif(backend, surrogate)
        self.conv2 = SpikeConv2d(self.channels[0], self.channels[1], 3, padding=1, backend=backend)
        self.lif2 = study_lif(backend, surrogate)
        self.fc1 = SpikeLinear(self.channels[1] * h * w, self.feature_size, backend=backend)
        self.lif3 = study_lif(backend, surrogate, truncate=False)  # its band feeds no spike layer

    def forward(self, x: Tensor) -> Tensor:
        # each layer's float spikes are freed once the next spike layer has read them (backward
        # reads the copies the ops saved, as bytes), before the next LIF allocates its own: two
        # layers' float spikes never coexist (audio M1's training peak: 65.0 -> 61.0 MB); a
        # LIF's band (None unless its surrogate has compact support) limits the next layer's
        # input gradient; flatten (C, H, W) like the reference's flatten(1) on [B, C, H, W]
        s, band = self.lif1.fire(self.conv1(x))
        current = self.conv2(s, grad_mask=band)
        del s
        s, band = self.lif2.fire(current)
        current = self.fc1(s.flatten(2), grad_mask=_flat_band(band))
        del s
        s, _ = self.lif3.fire(current)
        return s


class AudioEncoder(nn.Module):
    """Linear(700,1024) -> LIF -> Linear(1024,1024) -> LIF -> Linear(1024,512) -> LIF.

    forward(x [T, B, input_size], time-major) -> the 512-d spike layer [T, B, feature_size].

    Args:
        input_size: channels per time step; the study's SHD 700.
        hidden_sizes: the two hidden layers (1024, 1024).
        feature_size: the spike layer's width (512).
        backend: for every sparsespike op.
        surrogate: the LIFs' surrogate gradient (the study's by default).
    """

    def __init__(
        self,
        input_size: int = 700,
        hidden_sizes: Sequence[int] = (1024, 1024),
        feature_size: int = 512,
        backend: Optional[str] = None,
        surrogate: Surrogate = STUDY_SURROGATE,
    ) -> None:
        super().__init__()
        (self.input_size,) = _positive_ints((input_size,), "input_size")
        self.input_shape = (self.input_size,)
        self.hidden_sizes = _positive_ints(hidden_sizes, "hidden_sizes", 2)
        (self.feature_size,) = _positive_ints((feature_size,), "feature_size")
        h1, h2 = self.hidden_sizes
        self.fc_input = SpikeLinear(self.input_size, h1, backend=backend)
        self.lif_input = study_lif(backend, surrogate)
        self.fc1 = SpikeLinear(h1, h2, backend=backend)
        self.lif1 = study_lif(backend, surrogate)
        self.fc_hidden = SpikeLinear(h2, self.feature_size, backend=backend)
        self.lif_hidden = study_lif(backend, surrogate, truncate=False)  # its band feeds no spike layer

    def forward(self, x: Tensor) -> Tensor:
        # as VisualEncoder.forward: spikes freed before the next LIF, bands limit input gradients
        s, band = self.lif_input.fire(self.fc_input(x))
        current = self.fc1(s, grad_mask=band)
        del s
        s, band = self.lif1.fire(current)
        current = self.fc_hidden(s, grad_mask=band)
        del s
        s, _ = self.lif_hidden.fire(current)
        return s


READOUTS = ("count", "membrane")


def check_readout(readout: str) -> str:
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    return readout


class SpikingHead(nn.Module):
    """Linear(feature_size, num_classes) -> LIF: forward(x [T, B, feature_size]) -> its output per
    step [T, B, num_classes], which the model sums over time into the logits.

    readout="count" (the study's): the output spikes, so the logits are spike counts.
    readout="membrane": the output neurons' membrane divided by T, integrated without a threshold
    or reset (v_t = beta v_{t-1} + I_t, the LIF's beta), so the logits are the mean membrane. A
    membrane has a gradient wherever it is; a spike count has none once every output neuron sits
    far below threshold, which is where count training on the embedded sets went within 10-20
    steps (all logits 0, the loss stuck at ln 10; see docs/study-results.md).

    spiking_input: the input is a spike tensor, so the layer is an event-driven SpikeLinear;
    otherwise (memory outputs, dense floats) an nn.Linear. Same state_dict keys either way.
    """

    def __init__(
        self,
        feature_size: int,
        num_classes: int,
        spiking_input: bool = True,
        backend: Optional[str] = None,
        surrogate: Surrogate = STUDY_SURROGATE,
        readout: str = "count",
    ) -> None:
        super().__init__()
        (num_classes,) = _positive_ints((num_classes,), "num_classes")
        self.readout, self.backend = check_readout(readout), backend
        self.fc_out = (
            SpikeLinear(feature_size, num_classes, backend=backend)
            if spiking_input
            else nn.Linear(feature_size, num_classes)
        )
        self.lif_out = study_lif(backend, surrogate, truncate=False)

    def forward(self, x: Tensor) -> Tensor:
        current = self.fc_out(x)
        if self.readout == "membrane":
            membrane = lif(
                current,
                self.lif_out.beta,
                self.lif_out.threshold,
                reset="none",
                return_trace=True,
                backend=self.backend,
            ).trace
            return membrane / current.shape[0]
        spikes, _ = self.lif_out.fire(current)  # fire: its band fraction for the log
        return spikes

    def extra_repr(self) -> str:
        return f"readout={self.readout!r}"
