"""The models' memory modes: one keyword, ``memory=``, and one vocabulary for every model.

- ``"sequence"`` (default): the memory (Hopfield, HGRN or both) runs over time on the spike
  sequence, mixed into it through a gate that starts at 0; the head runs over time and the
  logits are its spike counts. M1 and M2 have no memory: their head reads the spike sequence
  itself, which is their only mode.
- ``"study"``: the reference code's head: the memory once on the time-mean features, then one
  LIF step (0/1 logits). M3, M4, M5 and the joint model.

The old keywords stay for one release as deprecated aliases (a DeprecationWarning names the
replacement): ``hgrn="qin" | "study"`` (M4, M5, joint) and ``hopfield="sequence" | "study"`` (M3);
``"qin"`` is ``"sequence"``.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Optional, Sequence

__all__ = ["MEMORY_MODES", "SEQUENCE", "STUDY", "deprecated_memory", "memory_mode"]

SEQUENCE, STUDY = "sequence", "study"
MEMORY_MODES = (SEQUENCE, STUDY)

# the deprecated keywords, the values each took, and the one value whose name changed
DEPRECATED_KEYWORDS = {"hgrn": ("qin", "study"), "hopfield": ("sequence", "study")}
_RENAMED_VALUES = {"qin": SEQUENCE}

_MODELS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_deprecated(message: str) -> None:
    """A DeprecationWarning attributed to the first caller outside sparsespike.models (the user's
    line, whether it called build_model or a model class)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_MODELS_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def check_deprecated(keyword: str, value: str) -> str:
    """``value`` of the deprecated ``keyword`` in the new vocabulary; ValueError naming the keyword
    for a value it never took."""
    if value not in DEPRECATED_KEYWORDS[keyword]:
        raise ValueError(f"{keyword} must be one of {DEPRECATED_KEYWORDS[keyword]}, got {value!r}")
    return _RENAMED_VALUES.get(value, value)


def deprecated_memory(memory: Optional[str], keyword: str, value: Optional[str]) -> Optional[str]:
    """``memory``, or the mode that the deprecated ``keyword=value`` asks for (with a warning)."""
    if value is None:
        return memory
    if memory is not None:
        raise TypeError(f"pass memory= only ({keyword}= is its deprecated name), got both")
    mode = check_deprecated(keyword, value)
    warn_deprecated(f"{keyword}= is deprecated: use memory= ({keyword}={value!r} is memory={mode!r})")
    return mode


def memory_mode(memory: Optional[str], modes: Sequence[str] = MEMORY_MODES, model: str = "") -> str:
    """The memory mode ``memory`` names (None: "sequence") if it is one of ``modes`` (those of
    ``model``, named in the error); the old value "qin" is accepted with a warning."""
    if memory is None:
        return SEQUENCE
    if memory in _RENAMED_VALUES:
        warn_deprecated(f"memory={memory!r} is deprecated: use memory={_RENAMED_VALUES[memory]!r}")
        memory = _RENAMED_VALUES[memory]
    if memory not in modes:
        owner = f" for {model}" if model else ""
        if tuple(modes) == (SEQUENCE,):
            owner += " (no memory: its head reads the spike sequence)"
        raise ValueError(f"memory must be one of {tuple(modes)}{owner}, got {memory!r}")
    return memory
