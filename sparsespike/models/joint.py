"""The study's joint model: one encoder per modality, a shared HGRN and a shared spiking head.

``model(x, modality)``: x is visual [B, T, 2, 34, 34] or audio [B, T, 700]; it goes through that
modality's encoder to the 512-d spike layer, then through the shared memory and head (labels in
the unified 10-class digit space; the study trains on alternating batches of the two modalities).

memory="sequence" (default): the real HGRN over time on the spike sequence as a zero-initialised
gated residual branch, head Linear(512, 10) -> LIF over time, logits = spike counts, features =
time-mean of the head's input.
memory="study": the reference's GRU-like gate once on the time-mean features, then one LIF step
(0/1 logits), features = the gate output. rates: time-mean of the spike layer in both.
hgrn= is memory's deprecated name ("qin" for "sequence").
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .._backend import check_backend
from .architectures import (
    MODALITIES,
    SUPCON_TEMPERATURE,
    ModelOutput,
    _choice,
    _hgrn_memory,
    build_encoder,
    check_input,
    memory_gate,
    residual_memory,
    run_encoder,
)
from .backbones import SpikingHead, Surrogate, check_readout
from .memory import MEMORY_MODES, STUDY, deprecated_memory, memory_mode

__all__ = ["JointModel"]


class JointModel(nn.Module):
    """Two modality-specific encoders, a shared memory (HGRN) and a shared head.

    Args:
        num_classes: the unified label space (10).
        backend: for every sparsespike module.
        memory: "sequence" (default) or "study" (see the module docstring); hgrn= is its
            deprecated name.
        visual_input_shape, visual_hidden_sizes, audio_input_shape, audio_hidden_sizes: encoder
            sizes (None: the study's; see :func:`~sparsespike.models.architectures.build_encoder`).
        feature_size: the shared spike layer's width (512).
        supcon_weight: SCL weight (0 by default, as the study's joint run), supcon_temperature 0.07.
        surrogate, surrogate_param, grad_band: every LIF's surrogate gradient (see
            :class:`~sparsespike.models.architectures.StudyModel`).
        readout: "count" (the study's) or "membrane", as StudyModel's.
    """

    name = "joint"
    multimodal = True  # one instance takes every modality, one encoder each (see .contract)
    modalities = MODALITIES
    memory_modes = MEMORY_MODES
    deprecated_memory_keyword = "hgrn"

    def __init__(
        self,
        num_classes: int = 10,
        backend: Optional[str] = None,
        memory: Optional[str] = None,
        visual_input_shape=None,
        visual_hidden_sizes=None,
        audio_input_shape=None,
        audio_hidden_sizes=None,
        feature_size: int = 512,
        supcon_weight: float = 0.0,
        supcon_temperature: float = SUPCON_TEMPERATURE,
        surrogate: str = "fast_sigmoid",
        surrogate_param: Optional[float] = None,
        grad_band: Optional[float] = None,
        readout: str = "count",
        *,
        hgrn: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.readout_mode = check_readout(readout)
        self.backend = None if backend is None else check_backend(backend)
        self.memory_mode = memory_mode(
            deprecated_memory(memory, self.deprecated_memory_keyword, hgrn), self.memory_modes, self.name
        )
        self.surrogate = Surrogate(surrogate, surrogate_param, grad_band)
        sizes = {"visual": (visual_input_shape, visual_hidden_sizes), "audio": (audio_input_shape, audio_hidden_sizes)}
        self.encoders = nn.ModuleDict(
            {m: build_encoder(m, *sizes[m], feature_size, self.backend, self.surrogate) for m in MODALITIES}
        )
        self.feature_size, self.num_classes = feature_size, num_classes
        self.hgrn = _hgrn_memory(self.memory_mode, feature_size, True, self.backend)
        self.memory_gate = memory_gate(self.memory_mode != STUDY)
        self.head = SpikingHead(feature_size, num_classes, False, self.backend, self.surrogate, self.readout_mode)
        self.supcon_weight, self.supcon_temperature = float(supcon_weight), float(supcon_temperature)
        if not self.supcon_temperature > 0:
            raise ValueError(f"supcon_temperature must be > 0, got {supcon_temperature}")

    def forward(self, x: Tensor, modality: str) -> ModelOutput:
        _choice(modality, MODALITIES, "modality")
        encoder = self.encoders[modality]
        check_input(x, encoder.input_shape, modality, next(self.parameters()).dtype)
        spikes = run_encoder(encoder, x)
        rates = spikes.mean(0)
        if self.memory_mode == STUDY:
            features = self.hgrn(rates)
            return ModelOutput(self.head(features.unsqueeze(0))[0], features, rates)
        sequence = residual_memory(spikes, self.hgrn(spikes), self.memory_gate)
        return ModelOutput(self.head(sequence).sum(0), sequence.mean(0), rates)

    def extra_repr(self) -> str:
        return (
            f"memory={self.memory_mode!r}, num_classes={self.num_classes}, "
            f"supcon_weight={self.supcon_weight}, backend={self.backend!r}"
        )
