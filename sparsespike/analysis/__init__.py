"""The study's engram analysis of the 512-d spike-rate features: collect them from a model over a
dataset, score how the classes cluster and how many dimensions they use, compare the codes of
the two modalities (centroid cosine, zero-shot transfer), tabulate and plot.

    visual = collect_features(model_v, load_dataset("saccade-digits", "test"), per_class=100)
    audio = collect_features(model_a, load_dataset("randman", "test"), per_class=100)
    table = engram_table({"visual": visual, "audio": audio})
    print(engram_markdown({"m4": table}))

Needs scikit-learn (clustering scores, zero-shot transfer, embeddings) and matplotlib (figures):
the ``analysis`` extra.
"""

from .engram import engram_markdown, engram_table, pair_key
from .features import Features, balanced_indices, collect_features, dataset_labels, load_features, save_features
from .figures import embed_2d, plot_alignment, plot_embedding
from .metrics import (
    Alignment,
    centroid_alignment,
    chance,
    class_centroids,
    clustering_scores,
    effective_dimensionality,
    silent_fraction,
    sparsity,
    zero_shot_transfer,
)

__all__ = [
    "Alignment",
    "Features",
    "balanced_indices",
    "centroid_alignment",
    "chance",
    "class_centroids",
    "clustering_scores",
    "collect_features",
    "dataset_labels",
    "effective_dimensionality",
    "embed_2d",
    "engram_markdown",
    "engram_table",
    "load_features",
    "pair_key",
    "plot_alignment",
    "plot_embedding",
    "save_features",
    "silent_fraction",
    "sparsity",
    "zero_shot_transfer",
]
