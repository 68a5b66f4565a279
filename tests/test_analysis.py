"""sparsespike.analysis: engram metrics on inputs with known answers, degenerate inputs, bad input,
feature collection from a tiny model, the engram table and Markdown, and the PNG figures."""

import json
import math
import sys

import numpy as np
import pytest
import torch
from network_guard import no_network  # noqa: F401  (autouse: no test here may touch the network)

from sparsespike.analysis import (
    Alignment,
    Features,
    balanced_indices,
    centroid_alignment,
    chance,
    class_centroids,
    clustering_scores,
    collect_features,
    dataset_labels,
    effective_dimensionality,
    embed_2d,
    engram_markdown,
    engram_table,
    load_features,
    plot_alignment,
    plot_embedding,
    save_features,
    silent_fraction,
    sparsity,
    zero_shot_transfer,
)
from sparsespike.models import build_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def clusters(
    seed: int,
    classes: int = 10,
    per_class: int = 50,
    dim: int = 64,
    spread: float = 3.0,
    noise: float = 1.0,
    centers=None,
):
    """Gaussian clusters around ``centers`` (random N(0, spread^2) ones by default)."""
    rng = np.random.default_rng(seed)
    if centers is None:
        centers = spread * rng.standard_normal((classes, dim))
    labels = np.repeat(np.arange(len(centers)), per_class)
    return centers[labels] + noise * rng.standard_normal((len(labels), centers.shape[1])), labels


def rate_features(seed: int = 0, n_per_class: int = 20, classes: int = 4, dim: int = 32) -> Features:
    """Non-negative, class-dependent rates in [0, 1] like a spike layer's."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    profile = rng.uniform(0, 0.2, (classes, dim))
    rates = np.clip(profile[labels] + 0.02 * rng.standard_normal((len(labels), dim)), 0, 1)
    return Features(rates, labels, labels.copy())


# ----------------------------------------------------------------------------- clustering


def test_separated_clusters_score_well():
    from sklearn import metrics

    x, y = clusters(0, spread=10.0, noise=0.5)
    scores = clustering_scores(x, y)
    assert scores["silhouette"] == pytest.approx(metrics.silhouette_score(x, y))
    assert scores["davies_bouldin"] == pytest.approx(metrics.davies_bouldin_score(x, y))
    assert scores["calinski_harabasz"] == pytest.approx(metrics.calinski_harabasz_score(x, y))
    assert scores["silhouette"] > 0.9
    assert scores["davies_bouldin"] < 0.2
    assert scores["calinski_harabasz"] > 1000


def test_shuffled_labels_score_near_zero():
    x, y = clusters(1, spread=10.0, noise=0.5)
    shuffled = np.random.default_rng(2).permutation(y)
    scores = clustering_scores(x, shuffled)
    assert -0.1 < scores["silhouette"] < 0.05  # slightly negative: b(i) is a minimum over classes
    assert scores["davies_bouldin"] > 5  # classes overlap entirely
    assert scores["calinski_harabasz"] < 5


def test_clustering_degenerate_cases_are_nan_not_errors():
    x, _ = clusters(3, classes=3, per_class=5)
    single = clustering_scores(x, np.zeros(len(x), dtype=int))
    assert all(math.isnan(v) for v in single.values())
    silent = clustering_scores(np.zeros((20, 8)), np.repeat([0, 1], 10))
    assert all(math.isnan(v) for v in silent.values())
    own_class = clustering_scores(x[:4], np.arange(4))  # every sample its own class
    assert math.isnan(own_class["silhouette"]) and own_class["davies_bouldin"] == 0.0
    assert own_class["calinski_harabasz"] == math.inf  # zero within-class spread
    same_centroids = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    assert clustering_scores(same_centroids, [0, 0, 1, 1])["davies_bouldin"] == math.inf


def test_class_centroids():
    x = np.array([[1.0, 0.0], [3.0, 2.0], [10.0, 10.0]])
    classes, centroids = class_centroids(x, [5, 5, 2])
    assert classes.tolist() == [2, 5]
    np.testing.assert_allclose(centroids, [[10.0, 10.0], [2.0, 1.0]])


# ----------------------------------------------------------------------------- alignment


def test_alignment_with_itself_is_one_on_the_diagonal():
    f = rate_features(0)
    a = centroid_alignment(f.rates, f.labels, f.rates, f.labels)
    assert isinstance(a, Alignment) and a.matrix.shape == (4, 4)
    np.testing.assert_allclose(np.diag(a.matrix), 1.0)
    assert a.same_class == pytest.approx(1.0)
    np.testing.assert_allclose(a.matrix, a.matrix.T)
    assert a.classes.tolist() == [0, 1, 2, 3]


def test_orthogonal_centroids_have_zero_off_diagonal():
    labels = np.repeat(np.arange(5), 6)
    gains = np.random.default_rng(4).uniform(0.5, 1.0, len(labels))
    rates = np.eye(8)[labels] * gains[:, None]  # class c fires only neuron c
    a = centroid_alignment(rates, labels, rates[::-1], labels[::-1])
    np.testing.assert_allclose(a.matrix, np.eye(5), atol=1e-12)
    assert a.different_class == pytest.approx(0.0, abs=1e-12)
    assert a.same_class == pytest.approx(1.0)


def test_raw_cosine_is_biased_positive_and_centring_removes_it():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(10), 30)
    a = rng.uniform(0, 0.1, (300, 64))
    b = rng.uniform(0, 0.1, (300, 64))  # unrelated to a
    raw = centroid_alignment(a, labels, b, labels)
    centred = centroid_alignment(a, labels, b, labels, centered=True)
    assert raw.different_class > 0.9 and raw.same_class > 0.9
    assert abs(centred.same_class) < 0.15 and abs(centred.different_class) < 0.05
    assert centred.centered and not raw.centered


def test_alignment_shared_classes_and_zero_norm_centroid():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, 0.0], [5.0, 5.0]])
    al = centroid_alignment(a, [0, 1, 2], b, [0, 1, 7])  # class 0 of a never fires
    assert al.classes.tolist() == [0, 1]
    np.testing.assert_allclose(al.matrix, [[0.0, 0.0], [math.sqrt(0.5), 1.0]])
    single = centroid_alignment(a, [0, 0, 0], b, [0, 0, 0])
    assert single.matrix.shape == (1, 1) and math.isnan(single.different_class)
    with pytest.raises(ValueError, match="no class in common"):
        centroid_alignment(a, [0, 1, 2], b, [3, 4, 5])
    with pytest.raises(ValueError, match="same width"):
        centroid_alignment(a, [0, 1, 2], np.ones((3, 3)), [0, 1, 2])


# ----------------------------------------------------------------------------- zero-shot


def test_zero_shot_with_shared_class_structure_is_perfect():
    xa, ya = clusters(6, per_class=30)
    centers = class_centroids(xa, ya)[1]
    xb, yb = clusters(7, per_class=30, centers=centers)  # same class code, new noise
    assert zero_shot_transfer(xa, ya, xb, yb) == 100.0
    assert zero_shot_transfer(xb, yb, xa, ya) == 100.0


def test_zero_shot_with_unrelated_class_structure_is_near_chance():
    xa, ya = clusters(8, per_class=50)
    xb, yb = clusters(9, per_class=200, spread=0.3)  # its own (weak) class code, unrelated to a's
    assert chance(yb) == 10.0
    assert abs(zero_shot_transfer(xa, ya, xb, yb) - chance(yb)) < 5.0


def test_zero_shot_degenerate_training_sets():
    x, y = clusters(10, classes=3, per_class=10)
    assert zero_shot_transfer(x, np.ones(len(y), dtype=int), x, y) == pytest.approx(100 / 3)
    constant = zero_shot_transfer(np.zeros_like(x), y, x, y)  # a silent network
    assert 0.0 <= constant <= 100.0
    with pytest.raises(ValueError, match="same width"):
        zero_shot_transfer(x, y, x[:, :5], y)


# ----------------------------------------------------------------------------- dimensionality, sparsity


@pytest.mark.parametrize("k", [1, 3, 7])
def test_effective_dimensionality_of_a_subspace(k):
    rng = np.random.default_rng(k)
    basis = np.linalg.qr(rng.standard_normal((64, k)))[0].T  # k orthonormal directions in 64-d
    x = rng.standard_normal((400, k)) @ basis + 2.0
    components, fraction = effective_dimensionality(x, variance=0.95)
    assert components == k
    assert fraction == pytest.approx(k / 64)
    assert effective_dimensionality(x, variance=1.0)[0] == k


def test_effective_dimensionality_counts_variance():
    scales = np.array([10.0, 1.0, 1.0, 0.1])  # variances 100, 1, 1, 0.01: 98 % in the first
    x = np.random.default_rng(11).standard_normal((5000, 4)) * scales
    assert effective_dimensionality(x, 0.9)[0] == 1
    assert effective_dimensionality(x, 0.999)[0] == 3
    assert effective_dimensionality(np.ones((10, 6))) == (0, 0.0)
    assert effective_dimensionality(np.ones((1, 6))) == (0, 0.0)
    with pytest.raises(ValueError, match="variance"):
        effective_dimensionality(x, 0.0)


def test_sparsity_and_silent_fraction():
    rates = np.array([[0.0, 0.5, 0.0, 0.1], [0.0, 0.3, 0.0, 0.1]])
    assert sparsity(rates) == pytest.approx(1 - 1.0 / 8)
    assert silent_fraction(rates) == 0.5
    assert sparsity(np.zeros((3, 5))) == 1.0 and silent_fraction(np.zeros((3, 5))) == 1.0
    with pytest.raises(ValueError, match=r"features must be firing rates in \[0, 1\]"):
        sparsity(rates * 3)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_errors_name_the_argument():
    x = np.random.default_rng(12).random((6, 3))
    y = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="labels has 5 entries"):
        clustering_scores(x, y[:5])
    with pytest.raises(ValueError, match="features must be 2-D"):
        clustering_scores(x[:, 0], y)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        clustering_scores(x, y[:, None])
    nan = x.copy()
    nan[2, 1] = np.nan
    with pytest.raises(ValueError, match="features has NaN"):
        effective_dimensionality(nan)
    with pytest.raises(ValueError, match="features_b has NaN"):
        centroid_alignment(x, y, nan, y)
    with pytest.raises(ValueError, match="test_labels has 4 entries"):
        zero_shot_transfer(x, y, x, y[:4])
    with pytest.raises(ValueError, match="integer class labels"):
        class_centroids(x, y + 0.5)
    with pytest.raises(ValueError, match="features must be 2-D"):
        sparsity(np.zeros((2, 3, 4)))


# ----------------------------------------------------------------------------- balanced indices, labels


def test_balanced_indices_counts_order_and_seed():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 7)
    idx = balanced_indices(labels, 4, seed=3)
    assert idx.dtype == np.int64 and len(idx) == 12
    assert np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [4, 4, 4]
    np.testing.assert_array_equal(idx, balanced_indices(labels, 4, seed=3))
    assert not np.array_equal(idx, balanced_indices(labels, 4, seed=4))
    assert sorted(balanced_indices(labels, 5)[np.isin(balanced_indices(labels, 5), np.arange(10, 15))]) == list(
        range(10, 15)
    )  # a class with exactly per_class samples gives them all


def test_balanced_indices_errors():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 7)
    with pytest.raises(ValueError, match=r"per_class=6 but class 1 has only 5 samples"):
        balanced_indices(labels, 6)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="per_class"):
            balanced_indices(labels, bad)


class _Labelled(torch.utils.data.Dataset):
    """Like the cached sets: a numpy .labels; reading a sample counts, to see the fast path."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)
        self.reads = 0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        self.reads += 1
        return torch.zeros(2), int(self.labels[i])


def test_dataset_labels_paths():
    ds = _Labelled([3, 1, 4, 1, 5])
    assert dataset_labels(ds).tolist() == [3, 1, 4, 1, 5]
    sub = torch.utils.data.Subset(ds, [4, 0])
    assert dataset_labels(sub).tolist() == [5, 3]
    assert ds.reads == 0
    pairs = [(torch.zeros(2), torch.tensor(7)), (torch.zeros(2), 2)]
    assert dataset_labels(pairs).tolist() == [7, 2]
    assert dataset_labels(torch.utils.data.Subset(pairs, [1])).tolist() == [2]
    tensors = torch.utils.data.TensorDataset(torch.zeros(3, 2), torch.tensor([1, 0, 1]))
    assert dataset_labels(tensors).dtype == np.int64


# ----------------------------------------------------------------------------- collect_features

AUDIO_SMALL = dict(input_shape=(12,), hidden_sizes=(24, 24), feature_size=16)
STEPS = 6


def _excite(model, gain: float = 3.0):
    """Random small nets stay silent in the deep layers; scale them so that the rates are not all 0."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(gain)
                layer.bias.add_(0.05 * gain)


def _spike_dataset(n: int, channels: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, STEPS, channels, generator=g) < 0.4).float()
    y = torch.arange(n) % 3
    return x, y


def test_collect_features_matches_the_model():
    torch.manual_seed(0)
    model = build_model("m1", "audio", num_classes=3, **AUDIO_SMALL).double()
    _excite(model)
    x, y = _spike_dataset(10, 12)
    data = [(x[i], int(y[i])) for i in range(len(y))]  # float32 frames as the datasets return them
    model.train()
    feats = collect_features(model, data, batch_size=4, progress=False)
    assert model.training  # restored
    assert feats.rates.shape == (10, 16) and feats.rates.dtype == np.float32
    assert feats.labels.tolist() == y.tolist() and feats.predictions.shape == (10,)
    model.eval()
    with torch.no_grad():
        out = model(x.double())
    np.testing.assert_allclose(feats.rates, out.rates.float().numpy(), atol=1e-6)
    np.testing.assert_array_equal(feats.predictions, out.logits.argmax(1).numpy())
    assert feats.rates.max() > 0


def test_collect_features_balanced_subset_and_progress():
    torch.manual_seed(1)
    model = build_model("m4", "audio", num_classes=3, **AUDIO_SMALL)
    x, y = _spike_dataset(12, 12, seed=1)
    data = torch.utils.data.TensorDataset(x, y)
    feats = collect_features(model, data, per_class=2, seed=5, progress=True)
    expected = balanced_indices(y.numpy(), 2, seed=5)
    assert len(feats) == 6 and feats.labels.tolist() == y.numpy()[expected].tolist()
    with torch.no_grad():
        np.testing.assert_allclose(feats.rates, model(x[expected]).rates.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="per_class"):
        collect_features(model, data, per_class=5, progress=False)
    with pytest.raises(ValueError, match="modality"):
        collect_features(model, data, modality="visual", progress=False)


def test_collect_features_joint_model_needs_a_modality():
    torch.manual_seed(2)
    model = build_model(
        "joint",
        num_classes=3,
        visual_input_shape=(2, 4, 4),
        visual_hidden_sizes=(2, 2),
        audio_input_shape=(12,),
        audio_hidden_sizes=(24, 24),
        feature_size=16,
    )
    x, y = _spike_dataset(6, 12, seed=2)
    data = torch.utils.data.TensorDataset(x, y)
    feats = collect_features(model, data, modality="audio", progress=False)
    with torch.no_grad():
        np.testing.assert_allclose(feats.rates, model(x, "audio").rates.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="modality"):
        collect_features(model, data, progress=False)


def test_saved_features_load_back_equal(tmp_path):
    features = rate_features(3)
    path = tmp_path / "runs" / "m1-audio.npz"  # the folder is created
    save_features(path, features)
    loaded = load_features(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    for field in ("rates", "labels", "predictions"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(features, field))
        assert getattr(loaded, field).dtype == getattr(features, field).dtype


# ----------------------------------------------------------------------------- table and Markdown


def test_engram_table_and_markdown():
    visual, audio = rate_features(13), rate_features(14)
    table = engram_table({"visual": visual, "audio": audio})
    json.loads(json.dumps(table))  # plain floats, ints and lists
    v, cross = table["visual"], table["visual-audio"]
    assert v["n_samples"] == 80 and v["num_classes"] == 4 and v["accuracy"] == 100.0
    assert v["silhouette"] > 0.5 and 1 <= v["effective_dim"] <= 32
    assert v["effective_dim_pct"] == pytest.approx(100 * v["effective_dim"] / 32)
    assert 0.8 < v["sparsity"] < 1 and v["silent_fraction"] == 0.0
    assert cross["classes"] == [0, 1, 2, 3] and cross["chance"] == 25.0
    assert {"zero_shot_visual_to_audio", "zero_shot_audio_to_visual"} <= set(cross)
    assert len(cross["cosine_matrix"]) == 4 and cross["cosine_different"] > cross["cosine_different_centered"]

    partial = engram_table(
        {"visual": visual, "audio": Features(audio.rates[:40], audio.labels[:40], audio.labels[:40])}
    )
    assert partial["visual-audio"]["classes"] == [0, 1] and partial["visual-audio"]["chance"] == 50.0

    only_audio = engram_table({"audio": audio})
    assert set(only_audio) == {"audio"}
    silent = engram_table({"visual": Features(np.zeros((8, 4)), np.arange(8) % 2, np.zeros(8))})
    assert math.isnan(silent["visual"]["silhouette"]) and silent["visual"]["effective_dim"] == 0

    md = engram_markdown({"m4": table, "m1 audio": only_audio, "m1 silent": silent})
    lines = md.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("| model | silhouette V / A")
    assert lines[2].startswith("| m4 | ") and "n/a" not in lines[2]
    assert lines[3].startswith("| m1 audio | n/a / ") and "n/a / n/a" in lines[3]
    assert "| m1 silent | n/a / n/a |" in lines[4]


# ----------------------------------------------------------------------------- figures


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_embedding_writes_a_png(tmp_path, method):
    feats = rate_features(15, n_per_class=8, classes=3)
    path = plot_embedding(feats, tmp_path / "out" / f"{method}.png", method=method, title="test")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_embed_2d_small_inputs():
    assert embed_2d(np.ones((1, 5)), "tsne").shape == (1, 2)
    assert embed_2d(np.arange(4.0)[:, None], "pca").shape == (4, 2)  # one feature: second axis 0
    assert embed_2d(np.random.default_rng(16).random((4, 3)), "tsne").shape == (4, 2)  # perplexity clipped
    with pytest.raises(ValueError, match="method"):
        embed_2d(np.ones((4, 2)), "umap")


def test_plot_alignment_writes_a_png(tmp_path):
    f = rate_features(17)
    path = plot_alignment(
        centroid_alignment(f.rates, f.labels, f.rates, f.labels, centered=True), tmp_path / "alignment.png"
    )
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_missing_optional_dependencies_name_the_extra(tmp_path, monkeypatch):
    feats = rate_features(18, n_per_class=4, classes=2)
    for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"sparsespike\[analysis\]"):
        plot_embedding(feats, tmp_path / "x.png")
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    with pytest.raises(ImportError, match=r"scikit-learn.*sparsespike\[analysis\]"):
        clustering_scores(feats.rates, feats.labels)
