"""The study's engram metrics on rate-coded features [N, D] (one row per sample) with labels [N].

- clustering_scores: silhouette (euclidean), Davies-Bouldin, Calinski-Harabasz of the classes;
- class_centroids, centroid_alignment: cosine similarity between the class centroids of two sets
  (two modalities), raw as the study computes it or mean-centred;
- zero_shot_transfer: a classifier trained on one modality's features, tested on the other's;
- effective_dimensionality: PCA components for 95 % of the variance, and that share of the width;
- sparsity, silent_fraction: how little the spike layer fires.

Degenerate inputs do not raise: a score that is undefined for them (a single class, a silent
network whose features are all identical) is float("nan"); each function says which.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Alignment",
    "centroid_alignment",
    "chance",
    "class_centroids",
    "clustering_scores",
    "effective_dimensionality",
    "silent_fraction",
    "sparsity",
    "zero_shot_transfer",
]

NAN = float("nan")


def _require(module: str):
    """Import an optional dependency with a message naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0].replace("sklearn", "scikit-learn")
        raise ImportError(
            f"sparsespike.analysis needs {package} for this: pip install 'sparsespike[analysis]'"
        ) from exc


def _check_features(features, name: str = "features") -> np.ndarray:
    x = np.asarray(features)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name} must be a numeric array [N, D], got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D] (one row per sample), got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have N >= 1 samples and D >= 1 features, got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return x


def _check_labels(labels, n: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but the features have {n} rows")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise ValueError(f"{name} must be integer class labels")
        y = y.astype(np.int64)
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise ValueError(f"{name} must be integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def _checked(features, labels, fname: str = "features", lname: str = "labels"):
    x = _check_features(features, fname)
    return x, _check_labels(labels, x.shape[0], lname)


def clustering_scores(features, labels) -> dict:
    """How well the classes cluster: ``silhouette`` (euclidean metric, in [-1, 1], higher is
    better; the study's 0.871 for M4 visual), ``davies_bouldin`` (>= 0, lower is better),
    ``calinski_harabasz`` (>= 0, higher is better).

    All three are NaN with a single class (there is no between-class structure to score) and
    when all feature rows are identical (a silent network: every distance is 0/0; sklearn would
    report 0, 0 and 1 there, which read as real scores). Silhouette is also NaN when every
    sample is its own class (undefined for N classes). Where sklearn's conventions would
    mislead, the limits are returned instead: Davies-Bouldin is inf when two class centroids
    coincide (those classes are not separated; sklearn reports 0, the best score), and
    Calinski-Harabasz is inf when every class is a single point (zero within-class spread;
    sklearn reports 1). Otherwise the values are sklearn's.
    """
    x, y = _checked(features, labels)
    classes = np.unique(y)
    scores = {"silhouette": NAN, "davies_bouldin": NAN, "calinski_harabasz": NAN}
    if len(classes) < 2 or (x == x[0]).all():
        return scores
    skm = _require("sklearn.metrics")
    if len(classes) <= x.shape[0] - 1:
        scores["silhouette"] = float(skm.silhouette_score(x, y, metric="euclidean"))
    scores["davies_bouldin"] = _davies_bouldin(x, y, classes)
    _, centroids = class_centroids(x, y)
    within = sum(((x[y == c] - centroids[i]) ** 2).sum() for i, c in enumerate(classes))
    scores["calinski_harabasz"] = float("inf") if within == 0 else float(skm.calinski_harabasz_score(x, y))
    return scores


def _davies_bouldin(x: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of the worst (s_i + s_j) / |c_i - c_j| (s: mean distance to the centroid),
    as sklearn's davies_bouldin_score, except that coinciding centroids give inf (sklearn: 0)
    and one sample per class is allowed (every s_i = 0: the score is 0)."""
    _, centroids = class_centroids(x, y)
    inverse = np.searchsorted(classes, y)
    spread = np.bincount(inverse, weights=np.linalg.norm(x - centroids[inverse], axis=1)) / np.bincount(inverse)
    gaps = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=-1)
    off = ~np.eye(len(classes), dtype=bool)
    if (gaps[off] == 0).any():
        return float("inf")
    ratios = np.where(off, (spread[:, None] + spread[None, :]) / np.where(off, gaps, 1.0), -np.inf)
    return float(ratios.max(1).mean())


def class_centroids(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """(classes [C] sorted, centroids float64 [C, D]): the mean feature vector of each class."""
    x, y = _checked(features, labels)
    classes, inverse = np.unique(y, return_inverse=True)
    sums = np.zeros((len(classes), x.shape[1]))
    np.add.at(sums, inverse, x)
    return classes, sums / np.bincount(inverse)[:, None]


@dataclass
class Alignment:
    """matrix [C, C]: cosine similarity of class centroids, set A's classes as rows and B's as
    columns, over the ``classes`` both sets have; ``same_class`` the mean of the diagonal,
    ``different_class`` the mean off the diagonal (NaN with one class); ``centered`` whether each
    set's mean centroid was subtracted first."""

    matrix: np.ndarray
    classes: np.ndarray
    same_class: float
    different_class: float
    centered: bool = False


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def centroid_alignment(features_a, labels_a, features_b, labels_b, centered: bool = False) -> Alignment:
    """Do the two sets (two modalities) put the same class in the same direction? Cosine
    similarity between A's and B's class centroids, over the classes both have.

    centered=False is the study's measure (0.038 for M2, -0.004 for M4): the raw centroids. Spike
    rates are never negative, so raw centroids all lie in the positive orthant and their cosine is
    biased positive even between unrelated classes. centered=True first subtracts from each set
    the mean of its centroids (over the shared classes), which removes that common offset, so 0
    means "no shared class geometry". A centroid of norm 0 (a class that never fires, or one equal
    to the mean when centred) has cosine 0 with everything. The features must have the same width.
    """
    xa, ya = _checked(features_a, labels_a, "features_a", "labels_a")
    xb, yb = _checked(features_b, labels_b, "features_b", "labels_b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"features_a and features_b must have the same width, got {xa.shape[1]} and {xb.shape[1]}")
    classes_a, centroids_a = class_centroids(xa, ya)
    classes_b, centroids_b = class_centroids(xb, yb)
    classes = np.intersect1d(classes_a, classes_b)
    if len(classes) == 0:
        raise ValueError("labels_a and labels_b have no class in common")
    ca = centroids_a[np.searchsorted(classes_a, classes)]
    cb = centroids_b[np.searchsorted(classes_b, classes)]
    if centered:
        ca, cb = ca - ca.mean(0), cb - cb.mean(0)
    matrix = _unit_rows(ca) @ _unit_rows(cb).T
    off = ~np.eye(len(classes), dtype=bool)
    different = float(matrix[off].mean()) if off.any() else NAN
    return Alignment(matrix, classes, float(np.diag(matrix).mean()), different, bool(centered))


def chance(labels) -> float:
    """Chance accuracy in %, 100 / number of classes (the study's 10 %), for uniform guessing."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be 1-D and non-empty, got shape {y.shape}")
    return 100.0 / len(np.unique(y))


def zero_shot_transfer(train_features, train_labels, test_features, test_labels, seed: int = 0) -> float:
    """Accuracy in % on one modality's features of a classifier trained on the other's (the study
    finds chance, 10 %: the modalities share no code for a class).

    The classifier is a multinomial LogisticRegression (L2, C=1, lbfgs) on inputs standardised
    with the training set's mean and scale; max_iter=5000 lets it converge on 512-d features.
    Degenerate: a single training class is predicted for every test sample; constant training
    features give a constant (majority-class) prediction. ``seed`` fixes the solver's state.
    """
    xtr, ytr = _checked(train_features, train_labels, "train_features", "train_labels")
    xte, yte = _checked(test_features, test_labels, "test_features", "test_labels")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"train_features and test_features must have the same width, got {xtr.shape[1]} and {xte.shape[1]}"
        )
    classes = np.unique(ytr)
    if len(classes) == 1:
        predicted = np.full(len(yte), classes[0])
    else:
        linear = _require("sklearn.linear_model")
        pipeline = _require("sklearn.pipeline")
        preprocessing = _require("sklearn.preprocessing")
        model = pipeline.make_pipeline(
            preprocessing.StandardScaler(), linear.LogisticRegression(max_iter=5000, random_state=seed)
        )
        predicted = model.fit(xtr, ytr).predict(xte)
    return float(100.0 * (predicted == yte).mean())


def effective_dimensionality(features, variance: float = 0.95) -> tuple[int, float]:
    """(components, fraction): the fewest principal components holding ``variance`` of the total
    variance, and components / feature width (the study: 1.8 % visual vs 6.1 % audio of 512).

    Zero total variance (one sample, or a silent network) gives (0, 0.0): nothing varies.
    """
    x = _check_features(features)
    if not (isinstance(variance, (int, float, np.floating)) and 0 < variance <= 1):
        raise ValueError(f"variance must be in (0, 1], got {variance!r}")
    singular = np.linalg.svd(x - x.mean(0), compute_uv=False)
    eigen = singular**2
    total = eigen.sum()
    if total <= 0:
        return 0, 0.0
    cumulative = np.cumsum(eigen) / total
    # the tolerance keeps rounding (a cumulative 0.9999999999 for variance=1) from adding components
    components = int(np.argmax(cumulative >= variance - 1e-9) + 1)
    return components, components / x.shape[1]


def _check_rates(features) -> np.ndarray:
    x = _check_features(features)
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"features must be firing rates in [0, 1], got values in [{x.min()}, {x.max()}]")
    return x


def sparsity(features) -> float:
    """1 - mean firing rate over samples and neurons: the share of (neuron, step) slots without a
    spike (the study reports > 97 %). Rates must be in [0, 1]."""
    return float(1.0 - _check_rates(features).mean())


def silent_fraction(features) -> float:
    """Share of neurons (columns) that never fire on any sample of the set: dead units, which
    inflate sparsity without coding anything. Rates must be in [0, 1]."""
    return float((_check_rates(features).max(0) == 0).mean())
