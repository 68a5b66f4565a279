"""NIR (Neuromorphic Intermediate Representation) export and import: a sparsespike model as a
``nir.NIRGraph`` for snnTorch, Norse, SpikingJelly, Lava, Sinabs and neuromorphic chips, and a
graph from them as a module on sparsespike's kernels. Needs the ``nir`` extra
(``pip install sparsespike[nir]``). The conventions (dt, beta <-> tau and r, resets) are in
:mod:`sparsespike.nir.conventions` and docs/nir.md."""

from __future__ import annotations

from .conventions import DEFAULT_DT
from .export import export
from .files import read, write
from .importer import NIRNetwork, import_

__all__ = ["DEFAULT_DT", "NIRNetwork", "export", "import_", "read", "write"]
