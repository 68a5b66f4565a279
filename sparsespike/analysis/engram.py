"""The study's engram table: per modality, how the classes cluster in the spike-rate features, how
many dimensions they use and how sparse they are; across modalities, whether a class has the
same code in both (centroid cosine, zero-shot transfer). One dict per model, JSON-serialisable
(undefined scores stay float("nan"), which json.dumps writes as NaN), and a Markdown rendering
of several models side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .features import Features
from .metrics import (
    centroid_alignment,
    clustering_scores,
    effective_dimensionality,
    silent_fraction,
    sparsity,
    zero_shot_transfer,
)

__all__ = ["engram_markdown", "engram_table", "pair_key"]

DEFAULT_PAIRS = (("visual", "audio"),)


def pair_key(a: str, b: str) -> str:
    """The table's key for the cross-modal entries of modalities a and b: "a-b"."""
    return f"{a}-{b}"


def _modality_row(features: Features) -> dict:
    components, fraction = effective_dimensionality(features.rates)
    row = {
        "n_samples": len(features),
        "num_classes": len(np.unique(features.labels)),
        "accuracy": float(100.0 * (features.predictions == features.labels).mean()),
    }
    row.update(clustering_scores(features.rates, features.labels))
    row.update(
        {
            "effective_dim": int(components),
            "effective_dim_pct": float(100.0 * fraction),
            "sparsity": sparsity(features.rates),
            "silent_fraction": silent_fraction(features.rates),
        }
    )
    return row


def _pair_row(a: str, fa: Features, b: str, fb: Features, seed: int) -> dict:
    raw = centroid_alignment(fa.rates, fa.labels, fb.rates, fb.labels)
    centred = centroid_alignment(fa.rates, fa.labels, fb.rates, fb.labels, centered=True)
    # zero-shot on the shared classes only, so that both directions have the same chance level
    ka, kb = np.isin(fa.labels, raw.classes), np.isin(fb.labels, raw.classes)
    xa, ya, xb, yb = fa.rates[ka], fa.labels[ka], fb.rates[kb], fb.labels[kb]
    return {
        "classes": [int(c) for c in raw.classes],
        "cosine_same": raw.same_class,
        "cosine_different": raw.different_class,
        "cosine_same_centered": centred.same_class,
        "cosine_different_centered": centred.different_class,
        "cosine_matrix": raw.matrix.tolist(),
        "cosine_matrix_centered": centred.matrix.tolist(),
        f"zero_shot_{a}_to_{b}": zero_shot_transfer(xa, ya, xb, yb, seed=seed),
        f"zero_shot_{b}_to_{a}": zero_shot_transfer(xb, yb, xa, ya, seed=seed),
        "chance": 100.0 / len(raw.classes),
    }


def engram_table(
    features_by_modality: Mapping[str, Features], pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, seed: int = 0
) -> dict:
    """One model's engram analysis.

    Returns ``{modality: {n_samples, num_classes, accuracy, silhouette, davies_bouldin,
    calinski_harabasz, effective_dim, effective_dim_pct, sparsity, silent_fraction}}`` for every
    modality given, plus, for every pair (a, b) in ``pairs`` whose both modalities are given,
    ``{pair_key(a, b): {classes, cosine_same, cosine_different, cosine_same_centered,
    cosine_different_centered, cosine_matrix, cosine_matrix_centered, zero_shot_a_to_b,
    zero_shot_b_to_a, chance}}`` over the ``classes`` both modalities have (accuracies and
    chance in %; cosines raw as the study's, and centred: see
    :func:`~sparsespike.analysis.metrics.centroid_alignment`). ``seed`` goes to the zero-shot
    classifier.
    """
    table = {}
    for modality, features in features_by_modality.items():
        if not isinstance(features, Features):
            raise TypeError(f"features_by_modality[{modality!r}] must be a Features, got {type(features).__name__}")
        table[modality] = _modality_row(features)
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"pairs must hold (modality_a, modality_b) with two different names, got {pair!r}")
        a, b = pair
        if a in features_by_modality and b in features_by_modality:
            table[pair_key(a, b)] = _pair_row(a, features_by_modality[a], b, features_by_modality[b], seed)
    return table


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _both(row: dict, key: str, digits: int, a: str = "visual", b: str = "audio") -> str:
    return " / ".join(_fmt(row.get(m, {}).get(key), digits) for m in (a, b))


COLUMNS = (
    "model",
    "silhouette V / A",
    "DB V / A",
    "CH V / A",
    "centroid cos same / diff",
    "centred centroid cos same / diff",
    "zero-shot V→A / A→V (%)",
    "eff. dim V / A (%)",
    "sparsity V / A (%)",
)


def engram_markdown(rows: Mapping[str, dict]) -> str:
    """A Markdown table of :func:`engram_table` results, one row per model (the keys of ``rows``):
    silhouette, Davies-Bouldin, Calinski-Harabasz and effective dimensionality (% of the width)
    for visual / audio, the raw and the centred centroid cosine of same / different classes, zero-shot accuracy
    visual->audio / audio->visual, sparsity in %. Missing or undefined values show "n/a"."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, row in rows.items():
        cross = row.get(pair_key("visual", "audio"), {})
        sparse = {
            m: {"pct": None if row.get(m, {}).get("sparsity") is None else 100.0 * row[m]["sparsity"]}
            for m in ("visual", "audio")
        }
        cells = [
            str(name).replace("|", "\\|"),
            _both(row, "silhouette", 3),
            _both(row, "davies_bouldin", 3),
            _both(row, "calinski_harabasz", 1),
            f"{_fmt(cross.get('cosine_same'), 3)} / {_fmt(cross.get('cosine_different'), 3)}",
            f"{_fmt(cross.get('cosine_same_centered'), 3)} / {_fmt(cross.get('cosine_different_centered'), 3)}",
            f"{_fmt(cross.get('zero_shot_visual_to_audio'), 1)} / {_fmt(cross.get('zero_shot_audio_to_visual'), 1)}",
            _both(row, "effective_dim_pct", 1),
            _both(sparse, "pct", 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
