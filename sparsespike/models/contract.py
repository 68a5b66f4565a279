"""What every model of sparsespike.models offers its callers (training, the study, the analysis, the
energy meter), so that they need not know which model they hold:

- ``model.modalities``: the modalities it takes: ("visual",) or ("audio",) for M1..M5, each built
  for one; ("visual", "audio") for the joint model, with one encoder each;
- ``model(x, modality)`` -> ``ModelOutput(logits, features, rates)`` for a batch ``x`` of one
  modality (a model built for one also takes ``model(x)``);
- ``model.memory_mode``, one of its class's ``memory_modes`` (see :mod:`.memory`), and
  ``num_classes``, ``feature_size``, ``supcon_weight``, ``supcon_temperature``.

Before a model is built, its class says whether one instance takes several modalities
(``multimodal``, then ``modalities``); :func:`~sparsespike.models.registry.model_modalities` asks
it by name. Code that also runs other modules (the analysis, the energy meter) asks
:func:`forward_modality` what to pass.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

__all__ = ["forward_modality", "modalities_of"]


def modalities_of(model: nn.Module) -> tuple[str, ...]:
    """The modalities ``model`` takes: its ``modalities`` (or its one ``modality``); () when it
    says neither (a module from elsewhere)."""
    declared = getattr(model, "modalities", None)
    if declared is not None:
        return tuple(declared)
    own = getattr(model, "modality", None)
    return () if own is None else (own,)


def forward_modality(model: nn.Module, modality: Optional[str]) -> Optional[str]:
    """What to pass as the modality of ``model(x, modality)``; None: call ``model(x)``.

    A model that takes several modalities needs one of them; a model that takes one needs none (a
    ``modality`` given must be its own); a module that says nothing gets ``modality`` as given."""
    taken = modalities_of(model)
    if len(taken) > 1:
        if modality not in taken:
            raise ValueError(
                f"modality must be one of {taken} for {type(model).__name__}, which takes several, got {modality!r}"
            )
        return modality
    if not taken:
        return modality
    if modality is not None and modality != taken[0]:
        raise ValueError(
            f"modality {modality!r} differs from the model's {taken[0]!r} (it was built for that one modality)"
        )
    return None
