"""Old public names, kept one release: each access warns and names its replacement.

A package lists its renamed attributes as ``{old: (new_module, new_name)}`` and installs
:func:`module_getattr` as its module ``__getattr__`` (PEP 562), so ``sparsespike.hopfield_retrieve``
and ``from sparsespike import hopfield_retrieve`` both warn once per access site and return the
new object itself (isinstance checks and identity keep working).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def module_getattr(package: str, renamed: dict[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``renamed`` names with a DeprecationWarning."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, new = renamed[name]
        warnings.warn(
            f"{package}.{name} is deprecated and will be removed in the next release; use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)

    return __getattr__


# the renames of 0.2, one table for every package that exported the old names
OPS_RENAMES = {
    "hopfield_retrieve": ("sparsespike.ops", "modern_hopfield"),
    "hopfield_retrieve_reference": ("sparsespike.ops", "modern_hopfield_reference"),
    "hopfield_recall": ("sparsespike.ops", "spiking_hopfield_recall"),
    "hopfield_recall_reference": ("sparsespike.ops", "spiking_hopfield_recall_reference"),
    "HopfieldRecall": ("sparsespike.ops", "SpikingHopfieldOutput"),
}
NN_RENAMES = {"Hopfield": ("sparsespike.nn", "ModernHopfield")}
