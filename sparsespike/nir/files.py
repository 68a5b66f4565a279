"""Writing and reading .nir files (HDF5): written atomically, read with errors naming the file."""

from __future__ import annotations

import io
from pathlib import Path

import nir

from .._atomic import atomic_write


def write(path, graph: nir.NIRGraph) -> Path:
    """Write ``graph`` to ``path`` (.nir, HDF5) atomically: a crash leaves the old file or none."""
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph, got {type(graph).__name__}")
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path


def read(path) -> nir.NIRGraph:
    """The graph in the .nir file at ``path``; FileNotFoundError or a ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no NIR file at {path}")
    try:
        return nir.read(str(path))
    except Exception as exc:  # h5py and nir raise many kinds on a corrupt or foreign file
        raise ValueError(f"path: {path} is not a readable NIR graph ({type(exc).__name__}: {exc})") from exc
