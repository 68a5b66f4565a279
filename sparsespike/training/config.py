"""Training configuration: the study's defaults, and which fields a resumed run must keep."""

from __future__ import annotations

import warnings
from dataclasses import InitVar, asdict, dataclass, field, fields
from typing import Any, Optional

from .._checks import require_finite_number, require_int
from ..models.backbones import check_readout
from ..models.memory import SEQUENCE, memory_mode
from ..models.registry import MODEL_NAMES, memory_from_deprecated, model_class, model_modalities
from ..ops.lif_reference import SURROGATES
from .activity import check_activity

MODELS = MODEL_NAMES
DEFAULT_DATASETS = {"visual": "saccade-digits", "audio": "randman"}  # the embedded sets: no download

# Fields that only say where or how fast to run; a resumed run may change them. Every other
# field shapes the result, so resuming with a different value is refused.
RUNTIME_FIELDS = frozenset({"device", "workers", "out", "resume", "progress", "data_dir", "cache_dir", "download"})


@dataclass
class TrainConfig:
    """One training run. Defaults are the study's (AdamW, weight decay 1e-4, batch 32, cosine
    schedule, clipping 1.0, patience 7, up to 30 epochs, SCL temperature 0.07); lr is the
    study code's 3e-4 (the paper's text says 1e-3). init="calibrated" scales each spiking layer
    to fire at ~3% on a training sample before the first step (see
    sparsespike.models.calibration), for the modalities in calibrate_modalities (audio by default);
    init="default" keeps PyTorch's init everywhere, as the study's code. memory: the model's
    memory mode, "sequence" or "study" (see sparsespike.models.memory; M1 and M2 have only
    "sequence"); hgrn= and hopfield= are its deprecated names (the one the model took applies).
    surrogate, surrogate_param, grad_band: every LIF's surrogate gradient (the study's fast sigmoid,
    slope 25, exact by default); with compact support (a grad_band, or "triangle") the backward
    runs only inside each layer's band (see sparsespike.models.StudyModel)."""

    model: str = "m1"
    dataset: str = "saccade-digits"  # a model that takes several modalities: one per modality, "<visual>+<audio>"
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    download: bool = False
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    min_lr: float = 1e-6
    grad_clip: float = 1.0
    patience: int = 7
    scl_weight: Optional[float] = None  # None: the model's own (0.1 for m2, m5; else 0)
    scl_temperature: float = 0.07
    init: str = "calibrated"  # or "default": PyTorch's init, as the study's code
    calibration_samples: int = 32
    # with init="calibrated": the modalities whose layers are calibrated (None: all of the run's).
    # Audio only by default: calibrated visual layers silence the output layer within a few steps
    # (measured; see sparsespike.study.plan), while audio layers past the first stay silent without it.
    calibrate_modalities: Optional[tuple[str, ...]] = ("audio",)
    memory: str = SEQUENCE
    surrogate: str = "fast_sigmoid"
    surrogate_param: Optional[float] = None  # None: 25 for fast_sigmoid (the study's), else the default
    grad_band: Optional[float] = None  # None: the surrogate is not truncated
    # activity regulariser (sparsespike.training.activity): activity_weight * sum over hidden LIFs
    # of max(0, rate - activity_target)^2 joins the loss; weight 0 turns it off
    activity_target: float = 0.03
    activity_weight: float = 0.0
    readout: str = "count"  # the logits: output spike counts (the study's) or "membrane" (see SpikingHead)
    backend: Optional[str] = None
    eval_split: Optional[str] = None  # None: "valid" when the dataset has one, else "test"
    limit_train: Optional[int] = None  # use a fixed random subset (quick runs)
    limit_eval: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    out: str = "runs/train"
    resume: bool = False
    progress: bool = True
    model_options: dict[str, Any] = field(default_factory=dict)
    hgrn: InitVar[Optional[str]] = None  # deprecated: memory
    hopfield: InitVar[Optional[str]] = None  # deprecated: memory

    def __post_init__(self, hgrn: Optional[str], hopfield: Optional[str]) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if hgrn is not None or hopfield is not None:
            self._take_deprecated_memory(hgrn, hopfield)
        for name, minimum in (
            ("epochs", 1),
            ("batch_size", 1),
            ("patience", 1),
            ("calibration_samples", 1),
            ("workers", 0),
            ("seed", None),
            ("limit_train", 1),
            ("limit_eval", 1),
        ):
            if not (name.startswith("limit_") and getattr(self, name) is None):
                require_int(getattr(self, name), name, minimum)
        # float fields: finite and in range (NaN compares false, so "< 0" alone would let it through)
        for name, strict in (
            ("lr", True),
            ("scl_temperature", True),
            ("weight_decay", False),
            ("min_lr", False),
            ("grad_clip", False),
            ("scl_weight", False),
            ("surrogate_param", True),
            ("grad_band", True),
        ):
            if not (name in ("scl_weight", "surrogate_param", "grad_band") and getattr(self, name) is None):
                require_finite_number(getattr(self, name), name, positive=strict, non_negative=not strict)
        check_activity(self.activity_target, self.activity_weight)
        check_readout(self.readout)
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if self.init not in ("calibrated", "default"):
            raise ValueError(f"init must be 'calibrated' or 'default', got {self.init!r}")
        if self.calibrate_modalities is not None:
            self.calibrate_modalities = tuple(self.calibrate_modalities)
            unknown = [m for m in self.calibrate_modalities if m not in ("visual", "audio")]
            if unknown:
                raise ValueError(f"calibrate_modalities must hold 'visual' and/or 'audio', got {unknown!r}")
        self.memory = memory_mode(self.memory, model_class(self.model).memory_modes, self.model)
        modalities = model_modalities(self.model)
        if modalities is not None and len(self.dataset_names) != len(modalities):
            pattern = "+".join(f"<{m}>" for m in modalities)
            raise ValueError(
                f"the {self.model} model trains on one dataset per modality: dataset must be {pattern!r} "
                f"(e.g. {default_dataset(self.model)!r} or 'nmnist+shd'), got {self.dataset!r}"
            )
        if modalities is None and len(self.dataset_names) != 1:
            raise ValueError(f"model {self.model!r} trains on one dataset, got {self.dataset!r}")

    def _take_deprecated_memory(self, hgrn: Optional[str], hopfield: Optional[str]) -> None:
        given = ", ".join(f"{k}={v!r}" for k, v in (("hgrn", hgrn), ("hopfield", hopfield)) if v is not None)
        chosen = memory_from_deprecated(self.model, hgrn=hgrn, hopfield=hopfield)
        warnings.warn(
            f"TrainConfig({given}) is deprecated: use memory= ("
            + (f"memory={chosen!r} for {self.model})" if chosen else f"ignored for {self.model}, as before)"),
            DeprecationWarning,
            stacklevel=4,  # the caller of TrainConfig(...): through __post_init__ and __init__
        )
        if chosen is not None:
            if self.memory not in (SEQUENCE, chosen):
                raise TypeError(f"pass memory= only ({given} is its deprecated name), got memory={self.memory!r} too")
            self.memory = chosen

    @property
    def dataset_names(self) -> list[str]:
        return self.dataset.split("+")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        config = {k: v for k, v in values.items() if k in known}
        if "memory" not in values and values.get("model", cls.model) in MODELS:
            # saved before memory= existed: the memory mode is the hgrn / hopfield value the model took
            old = memory_from_deprecated(values.get("model", cls.model), values.get("hgrn"), values.get("hopfield"))
            config["memory"] = old or SEQUENCE
        return cls(**config)

    def result_fields_differing(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """Fields (not runtime-only) whose values differ: {name: (self, other)}."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k]}


def default_dataset(model: str) -> str:
    """The embedded set(s) ``model`` trains on unless told: saccade-digits, or one per modality
    joined by "+" for a model that takes several (the joint model: saccade-digits+randman)."""
    return "+".join(DEFAULT_DATASETS[m] for m in model_modalities(model) or ("visual",))
