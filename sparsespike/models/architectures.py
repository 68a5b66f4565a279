"""The study's five architectures (M1..M5) for visual or audio input, on the engine.

Input batch-first like the study: visual [B, T, 2, 34, 34], audio [B, T, 700]. Output
``ModelOutput(logits [B, C], features [B, 512], rates [B, 512])``: logits are the output layer's
spike counts over time, rates the time-mean of the 512-d spike layer, features what the study's
supervised contrastive loss (SCL) acts on.

The memory mode is ``memory=`` for every model (see :mod:`sparsespike.models.memory`).

``memory="sequence"`` (default, engine mode): the memory runs over the time axis on the 512-d spike
sequence [T, B, 512] as a residual branch whose output is scaled by a learnable gate initialised to
0 (see :func:`residual_memory`), then the head Linear(512, C) -> LIF over time, logits = spike count:

- M1 baseline: no memory; features = rates.
- M2: M1 trained with SCL (``supcon_weight`` 0.1, temperature 0.07).
- M3: :class:`~sparsespike.nn.HopfieldMemory` (256 patterns, temperature 0.1) per time step on the
  spikes (spike queries: event-driven scores).
- M4: :class:`~sparsespike.nn.HGRN` (Qin et al.) over time on the spikes (event-driven input
  projection).
- M5: Hopfield per step, then HGRN (dense input) over time; SCL weight 0.1.
- M3..M5 features: the time-mean of the head's input (spikes + gate * memory output).

``memory="study"``, the reference code's heads for exact reproduction (M3..M5): M4 and M5 apply
the GRU-like :class:`StudyGate` ONCE to the time-mean features (h0 = 0), M5 with the Hopfield
before it on the time-mean features too; M3 the Hopfield on the time-mean features. Then
Linear(512, C) -> ONE LIF step from a zero membrane: the 0/1 output spikes are the logits, as in
the reference; features = the gate output h (M4, M5) or the retrieved pattern (M3).

Deliberate differences to the reference code (Models/*.py):

- The encoders run whole sequences per layer (T folded into the batch, one fused LIF call) instead
  of a Python loop over time; the recurrence is the same (M1/M2 match snnTorch step by step).
- In the reference, M3..M5 still run the backbone's own Linear(512, C) -> LIF output head and
  discard it (parameters without gradient); here those models have only the head they use.
- Engine mode (the default) puts the memories on the spike sequence over time, not on the
  time-mean; the real HGRN replaces the GRU-like gate. Study mode keeps the reference's heads.
- The reference's study-mode output LIF is an snnTorch Leaky with hidden state; its global
  ``reset_hidden`` in the backbone zeroes it every forward, so one step from zero is the same.
- Layer sizes are parameters (the study's values are the defaults) and the backend is selectable.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from .._backend import check_backend
from ..nn import HGRN, HopfieldMemory
from ..ops._validate import spikes_named
from .backbones import STUDY_SURROGATE, AudioEncoder, SpikingHead, Surrogate, VisualEncoder, check_readout
from .memory import MEMORY_MODES, SEQUENCE, STUDY, deprecated_memory, memory_mode
from .study_gate import StudyGate

__all__ = [
    "M1Baseline",
    "M2SupCon",
    "M3Hopfield",
    "M4HGRN",
    "M5Hybrid",
    "ModelOutput",
    "StudyModel",
    "build_encoder",
    "check_input",
    "residual_memory",
]

MODALITIES = ("visual", "audio")
SUPCON_TEMPERATURE = 0.07  # the reference code's (0.1 in the paper's text)
_INPUT_DTYPES = (torch.bool, torch.uint8)


class ModelOutput(NamedTuple):
    """logits [B, C] (output spike counts), features [B, F] (for SCL), rates [B, F] (time-mean
    of the F = 512-d spike layer)."""

    logits: Tensor
    features: Tensor
    rates: Tensor


def _choice(value: str, options: Sequence[str], name: str) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def build_encoder(
    modality: str,
    input_shape=None,
    hidden_sizes=None,
    feature_size: int = 512,
    backend: Optional[str] = None,
    surrogate: Surrogate = STUDY_SURROGATE,
) -> nn.Module:
    """The study's encoder for ``modality`` up to the spike layer; None sizes mean the study's.

    visual: input_shape (C, H, W) = (2, 34, 34), hidden_sizes = conv channels (64, 128);
    audio: input_shape (700,) or 700, hidden_sizes = (1024, 1024)."""
    _choice(modality, MODALITIES, "modality")
    if modality == "visual":
        return VisualEncoder(
            input_shape if input_shape is not None else (2, 34, 34),
            hidden_sizes if hidden_sizes is not None else (64, 128),
            feature_size,
            backend,
            surrogate,
        )
    if input_shape is None:
        size = 700
    elif isinstance(input_shape, int):
        size = input_shape
    else:
        shape = tuple(input_shape)
        if len(shape) != 1:
            raise ValueError(f"input_shape for audio must be (channels,), got {shape!r}")
        size = shape[0]
    return AudioEncoder(
        size, hidden_sizes if hidden_sizes is not None else (1024, 1024), feature_size, backend, surrogate
    )


def check_input(x, input_shape: Sequence[int], modality: str, dtype: torch.dtype, name: str = "x") -> None:
    """Raise a clear error unless x is a batch-first [B, T, *input_shape] tensor the model takes."""
    expected = "[B, T, " + ", ".join(str(s) for s in input_shape) + "]"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {expected} ({modality} input), got {type(x).__name__}")
    if x.dim() != 2 + len(input_shape) or tuple(x.shape[2:]) != tuple(input_shape):
        raise ValueError(
            f"{name} must be {expected} ({modality} input, batch-first, T time steps), got shape {list(x.shape)}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have B >= 1 and T >= 1, got shape {list(x.shape)}")
    if x.dtype.is_floating_point:
        if x.dtype != dtype:
            raise TypeError(f"{name} has dtype {x.dtype}, the model's parameters {dtype}: convert one of them")
    elif x.dtype not in _INPUT_DTYPES:
        raise TypeError(f"{name} must be floating point ({dtype}) or bool/uint8 spikes, got dtype {x.dtype}")


def run_encoder(encoder: nn.Module, x: Tensor, name: str = "x") -> Tensor:
    """encoder(x) for batch-first x [B, T, ...]: the spike layer, time-major [T, B, F]; NaN/Inf
    in x, found by the first layer's kernel, is reported under the model's name (later layers read
    LIF spikes, always 0/1). (The first layer's reshape copies the transposed x, freed after it.)"""
    with spikes_named(name):
        return encoder(x.transpose(0, 1))


def _study_hopfield(feature_size: int, num_patterns: int, temperature: float, backend: Optional[str]) -> HopfieldMemory:
    memory = HopfieldMemory(feature_size, num_patterns, temperature, backend=backend)
    nn.init.xavier_uniform_(memory.patterns)  # the reference's initialisation of the stored patterns
    return memory


def residual_memory(spikes: Tensor, memory: Tensor, gate: Tensor) -> Tensor:
    """Engine mode's head input: the spikes plus the memory's output scaled by a learnable gate
    that starts at 0 (a zero-initialised residual branch, as in ReZero / fla's residual blocks).

    At initialisation M3..M5 therefore equal M1, and training learns how much memory to mix in.
    Without it the memory output, largely the same for every sample, drowned the sample-specific
    spikes at the head: on the embedded audio set the output layer fell silent within an epoch
    and M3..M5 stayed at chance for 8 epochs while M1 reached 86%."""
    return spikes + gate * memory


def memory_gate(enabled: bool) -> Optional[nn.Parameter]:
    return nn.Parameter(torch.zeros(())) if enabled else None


class StudyModel(nn.Module):
    """Shared skeleton: encoder -> memory -> spiking head. Subclasses set the memory.

    Args:
        modality: "visual" or "audio".
        num_classes: output classes (10: the unified digit space).
        backend: for every sparsespike module ("auto", "reference", "cpp", "triton", None).
        input_shape, hidden_sizes: encoder sizes (see :func:`build_encoder`), the study's by default.
        feature_size: the spike layer's width (512).
        supcon_weight: SCL weight for training (None: the model's study default).
        supcon_temperature: SCL temperature (0.07).
        memory: one of the class's ``memory_modes`` (None: "sequence"; see
            :mod:`sparsespike.models.memory`).
        readout: "count" (the study's: logits = output spike counts) or "membrane" (the output
            neurons' mean membrane, no threshold); see :class:`~.backbones.SpikingHead`.
        surrogate, surrogate_param, grad_band: every LIF's surrogate gradient (see
            :class:`~sparsespike.models.backbones.Surrogate`; the study's fast sigmoid, slope 25,
            by default). With compact support (a grad_band, or "triangle") the spike layers
            compute their input gradients only inside the band of the LIF below. A grad_band
            truncates the hidden LIFs only: the encoder's output layer and the head keep the
            whole surrogate (see :mod:`~sparsespike.models.backbones`).
    """

    default_supcon_weight = 0.0
    name = "study"
    multimodal = False  # one instance takes one modality, chosen when built (see .contract)
    memory_modes: tuple[str, ...] = (SEQUENCE,)  # M1, M2: no memory, the head reads the spikes
    deprecated_memory_keyword: Optional[str] = None  # memory's old name in this class (one release)
    _study_readout = False  # True: memory on the time-mean, one LIF step (set per instance)

    def __init__(
        self,
        modality: str = "visual",
        num_classes: int = 10,
        backend: Optional[str] = None,
        input_shape=None,
        hidden_sizes=None,
        feature_size: int = 512,
        supcon_weight: Optional[float] = None,
        supcon_temperature: float = SUPCON_TEMPERATURE,
        memory: Optional[str] = None,
        surrogate: str = "fast_sigmoid",
        surrogate_param: Optional[float] = None,
        grad_band: Optional[float] = None,
        readout: str = "count",
    ) -> None:
        super().__init__()
        self.modality = _choice(modality, MODALITIES, "modality")
        self.readout_mode = check_readout(readout)
        self.memory_mode = memory_mode(memory, self.memory_modes, self.name)
        self.backend = None if backend is None else check_backend(backend)
        self.surrogate = Surrogate(surrogate, surrogate_param, grad_band)
        self.encoder = build_encoder(modality, input_shape, hidden_sizes, feature_size, self.backend, self.surrogate)
        self.input_shape = self.encoder.input_shape
        self.feature_size, self.num_classes = self.encoder.feature_size, num_classes
        self.supcon_weight = float(self.default_supcon_weight if supcon_weight is None else supcon_weight)
        self.supcon_temperature = float(supcon_temperature)
        if not self.supcon_temperature > 0:
            raise ValueError(f"supcon_temperature must be > 0, got {supcon_temperature}")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this model takes: the one it was built for."""
        return (self.modality,)

    def _set_readout(self, study: bool) -> None:
        """Study mode reads the memory once on the time-mean; engine mode mixes it into the spike
        sequence through a gate starting at 0 (see :func:`residual_memory`)."""
        self._study_readout = study
        self.memory_gate = memory_gate(not study)

    def _param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def encode(self, x: Tensor) -> Tensor:
        """Batch-first input [B, T, ...] -> the spike layer, time-major [T, B, feature_size]."""
        check_input(x, self.input_shape, self.modality, self._param_dtype())
        return run_encoder(self.encoder, x)

    def memory_sequence(self, spikes: Tensor) -> Tensor:
        """Engine mode: [T, B, F] spikes -> [T, B, F] head input (identity: the spikes)."""
        return spikes

    def memory_mean(self, rates: Tensor) -> Tensor:
        """Study mode: [B, F] time-mean features -> [B, F] head input."""
        raise NotImplementedError(f"{type(self).__name__} has no study-mode readout")

    def forward(self, x: Tensor, modality: Optional[str] = None) -> ModelOutput:
        """x [B, T, ...] batch-first -> ModelOutput. ``modality``, if given, must be the model's
        own: every model takes ``model(x, modality)`` (see :mod:`.contract`)."""
        if modality is not None and modality != self.modality:
            raise ValueError(f"modality {modality!r} differs from the model's {self.modality!r}")
        spikes = self.encode(x)
        return self.readout(spikes)

    def readout(self, spikes: Tensor) -> ModelOutput:
        """The time-major spike layer [T, B, F] -> ModelOutput."""
        rates = spikes.mean(0)
        if self._study_readout:
            features = self.memory_mean(rates)
            logits = self.head(features.unsqueeze(0))[0]  # one LIF step from a zero membrane
            return ModelOutput(logits, features, rates)
        if getattr(self, "memory_gate", None) is None:  # M1, M2: the head reads the spikes
            return ModelOutput(self.head(spikes).sum(0), rates, rates)
        sequence = residual_memory(spikes, self.memory_sequence(spikes), self.memory_gate)
        return ModelOutput(self.head(sequence).sum(0), sequence.mean(0), rates)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, modality={self.modality!r}, num_classes={self.num_classes}, "
            f"supcon_weight={self.supcon_weight}, backend={self.backend!r}"
        )


class M1Baseline(StudyModel):
    """M1: encoder -> Linear(512, C) -> LIF; logits = output spike counts, features = rates."""

    name = "m1"

    def __init__(
        self, modality: str = "visual", num_classes: int = 10, backend: Optional[str] = None, **options
    ) -> None:
        super().__init__(modality, num_classes, backend, **options)
        self.head = SpikingHead(self.feature_size, num_classes, True, self.backend, self.surrogate, self.readout_mode)


class M2SupCon(M1Baseline):
    """M2: M1 trained with the supervised contrastive loss (weight 0.1, temperature 0.07)."""

    name = "m2"
    default_supcon_weight = 0.1


class M3Hopfield(StudyModel):
    """M3: + modern Hopfield memory (256 patterns, temperature 0.1).

    memory="sequence" (default): per time step on the spike sequence, head over time.
    memory="study": on the time-mean features, one LIF step (the reference's head).
    hopfield= is memory's deprecated name."""

    name = "m3"
    memory_modes = MEMORY_MODES
    deprecated_memory_keyword = "hopfield"

    def __init__(
        self,
        modality: str = "visual",
        num_classes: int = 10,
        backend: Optional[str] = None,
        memory: Optional[str] = None,
        num_patterns: int = 256,
        hopfield_temperature: float = 0.1,
        *,
        hopfield: Optional[str] = None,
        **options,
    ) -> None:
        memory = deprecated_memory(memory, self.deprecated_memory_keyword, hopfield)
        super().__init__(modality, num_classes, backend, memory=memory, **options)
        self._set_readout(self.memory_mode == STUDY)
        self.hopfield = _study_hopfield(self.feature_size, num_patterns, hopfield_temperature, self.backend)
        self.head = SpikingHead(self.feature_size, num_classes, False, self.backend, self.surrogate, self.readout_mode)

    def memory_sequence(self, spikes: Tensor) -> Tensor:
        return self.hopfield(spikes)

    def memory_mean(self, rates: Tensor) -> Tensor:
        return self.hopfield(rates)


def _hgrn_memory(mode: str, feature_size: int, spiking_input: bool, backend: Optional[str]) -> nn.Module:
    """Over the spike sequence: Qin et al.'s HGRN; study mode: the reference's GRU-like gate."""
    if mode == SEQUENCE:
        return HGRN(feature_size, spiking_input=spiking_input, backend=backend)
    return StudyGate(feature_size, feature_size)


class M4HGRN(StudyModel):
    """M4: + HGRN.

    memory="sequence" (default): the real HGRN over time on the spike sequence, head over time.
    memory="study": the reference's GRU-like gate once on the time-mean features, one LIF step.
    hgrn= is memory's deprecated name ("qin" for "sequence")."""

    name = "m4"
    memory_modes = MEMORY_MODES
    deprecated_memory_keyword = "hgrn"

    def __init__(
        self,
        modality: str = "visual",
        num_classes: int = 10,
        backend: Optional[str] = None,
        memory: Optional[str] = None,
        *,
        hgrn: Optional[str] = None,
        **options,
    ) -> None:
        memory = deprecated_memory(memory, self.deprecated_memory_keyword, hgrn)
        super().__init__(modality, num_classes, backend, memory=memory, **options)
        self._set_readout(self.memory_mode == STUDY)
        self.hgrn = _hgrn_memory(self.memory_mode, self.feature_size, True, self.backend)
        self.head = SpikingHead(self.feature_size, num_classes, False, self.backend, self.surrogate, self.readout_mode)

    def memory_sequence(self, spikes: Tensor) -> Tensor:
        return self.hgrn(spikes)

    def memory_mean(self, rates: Tensor) -> Tensor:
        return self.hgrn(rates)


class M5Hybrid(StudyModel):
    """M5: Hopfield + HGRN + SCL (weight 0.1).

    memory="sequence" (default): Hopfield per time step, then the real HGRN (dense input) over time.
    memory="study": Hopfield then the GRU-like gate, both on the time-mean features, one LIF step.
    hgrn= is memory's deprecated name ("qin" for "sequence")."""

    name = "m5"
    default_supcon_weight = 0.1
    memory_modes = MEMORY_MODES
    deprecated_memory_keyword = "hgrn"

    def __init__(
        self,
        modality: str = "visual",
        num_classes: int = 10,
        backend: Optional[str] = None,
        memory: Optional[str] = None,
        num_patterns: int = 256,
        hopfield_temperature: float = 0.1,
        *,
        hgrn: Optional[str] = None,
        **options,
    ) -> None:
        memory = deprecated_memory(memory, self.deprecated_memory_keyword, hgrn)
        super().__init__(modality, num_classes, backend, memory=memory, **options)
        self._set_readout(self.memory_mode == STUDY)
        self.hopfield = _study_hopfield(self.feature_size, num_patterns, hopfield_temperature, self.backend)
        self.hgrn = _hgrn_memory(self.memory_mode, self.feature_size, False, self.backend)
        self.head = SpikingHead(self.feature_size, num_classes, False, self.backend, self.surrogate, self.readout_mode)

    def memory_sequence(self, spikes: Tensor) -> Tensor:
        return self.hgrn(self.hopfield(spikes))

    def memory_mean(self, rates: Tensor) -> Tensor:
        return self.hgrn(self.hopfield(rates))
