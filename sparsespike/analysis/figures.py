"""Figures of the engram analysis as PNG files: a 2-D embedding of the spike-rate features
coloured by class (PCA or t-SNE), and the cross-modal centroid-cosine heatmap.

matplotlib is imported only when a figure is drawn (it is in the ``analysis`` extra), and only
through its Agg canvas: no pyplot, so no global backend or figure state is touched. Each PNG is
rendered in memory and written atomically (a reader never sees half a file).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .._atomic import atomic_write
from .features import Features
from .metrics import Alignment, _require

__all__ = ["EMBEDDING_METHODS", "embed_2d", "new_figure", "plot_alignment", "plot_embedding", "save_png"]

EMBEDDING_METHODS = ("pca", "tsne")
SINGLE_THREAD_TSNE = 1000


def new_figure(size):
    """A matplotlib Figure on the Agg canvas (no pyplot state); ImportError names the extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("drawing figures needs matplotlib: pip install 'sparsespike[analysis]'") from exc
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Union[str, Path]) -> Path:
    """The figure as a PNG at path, written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write(path, buffer.getvalue())


def embed_2d(rates, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """[N, D] -> [N, 2]. t-SNE's perplexity is clipped to N - 1 (it must stay below the number of
    samples); with fewer than 2 components available the missing axis is 0. Fixed ``seed``."""
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method must be one of {EMBEDDING_METHODS}, got {method!r}")
    x = np.asarray(rates, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or not np.isfinite(x).all():
        raise ValueError(f"rates must be a finite 2-D array [N, D] with N >= 1, got shape {x.shape}")
    n, d = x.shape
    out = np.zeros((n, 2))
    if n < 2:
        return out
    decomposition = _require("sklearn.decomposition")
    if method == "pca":
        k = min(2, n, d)
        out[:, :k] = decomposition.PCA(n_components=k, random_state=seed).fit_transform(x)
        return out
    manifold = _require("sklearn.manifold")
    threadpoolctl = _require("threadpoolctl")  # a dependency of scikit-learn
    tsne = manifold.TSNE(
        n_components=2, perplexity=float(min(perplexity, n - 1)), init="pca" if d >= 2 else "random", random_state=seed
    )
    # Up to SINGLE_THREAD_TSNE points one OpenMP thread is faster than synchronising several on
    # every one of t-SNE's 1000 iterations, and on a busy machine 100x faster (24 points: 0.1 s
    # against 20 s on 2 cores with one taken); it also makes the result bit-reproducible.
    with threadpoolctl.threadpool_limits(limits=1 if n <= SINGLE_THREAD_TSNE else None, user_api="openmp"):
        return tsne.fit_transform(x)


def plot_embedding(
    features: Features, path: Union[str, Path], method: str = "pca", title: Optional[str] = None, seed: int = 0
) -> Path:
    """Scatter of the features in 2-D (``method`` "pca" or "tsne", ``seed`` fixed), one colour and
    legend entry per class, written as a PNG to ``path``; returns the path."""
    if not isinstance(features, Features):
        raise TypeError(f"features must be a Features, got {type(features).__name__}")
    xy = embed_2d(features.rates, method, seed)
    fig = new_figure((6, 5))
    ax = fig.add_subplot()
    classes = np.unique(features.labels)
    colours = _colours(len(classes))
    for colour, cls in zip(colours, classes):
        mask = features.labels == cls
        ax.scatter(xy[mask, 0], xy[mask, 1], s=10, color=colour, label=str(cls), alpha=0.8, linewidths=0)
    ax.legend(title="class", fontsize="small", markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    name, axis = ("PCA", "PC") if method == "pca" else ("t-SNE", "t-SNE ")
    ax.set_xlabel(f"{axis}1")
    ax.set_ylabel(f"{axis}2")
    ax.set_title(title if title is not None else f"{name} of spike-rate features (N = {len(features)})")
    return save_png(fig, path)


def _colours(count: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def plot_alignment(alignment: Alignment, path: Union[str, Path], title: Optional[str] = None) -> Path:
    """Heatmap of the centroid cosine matrix (rows: set A's classes, columns: set B's) on a fixed
    [-1, 1] diverging scale with a colorbar; values printed in the cells up to 12 classes.
    Written as a PNG to ``path``; returns the path."""
    if not isinstance(alignment, Alignment):
        raise TypeError(f"alignment must be an Alignment, got {type(alignment).__name__}")
    matrix = np.asarray(alignment.matrix, dtype=np.float64)
    labels = [str(c) for c in alignment.classes]
    fig = new_figure((6, 5))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("class (B)")
    ax.set_ylabel("class (A)")
    if len(labels) <= 12:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{matrix[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(matrix[i, j]) > 0.6 else "black",
                )
    kind = "centred" if alignment.centered else "raw"
    ax.set_title(
        title
        if title is not None
        else f"Class-centroid cosine ({kind}): same {alignment.same_class:.3f}, "
        f"different {alignment.different_class:.3f}"
    )
    return save_png(fig, path)
