"""Embedded datasets (no files, no downloads): shapes, determinism, balance, learnability."""

import numpy as np
import pytest
import torch
from network_guard import no_network  # noqa: F401  (autouse)
from sklearn.linear_model import RidgeClassifier

from sparsespike.data import dataset_info, load_dataset, randman_events, saccade_digit_events


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("embedded")
    return {
        (name, split): load_dataset(name, split, data_dir=root)
        for name in ("saccade-digits", "randman")
        for split in ("train", "test")
    }


def stack(ds):
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(xs).numpy(), np.asarray(ys)


@pytest.mark.parametrize("name", ["saccade-digits", "randman"])
def test_shapes_and_balance(sets, name):
    info = dataset_info(name)
    assert info.embedded and info.files == ()
    train, test = sets[name, "train"], sets[name, "test"]
    assert train.info == info
    x, y = train[0]
    assert x.dtype == torch.float32 and x.shape == (info.time_steps, *info.input_shape)
    assert isinstance(y, int)
    for ds, n in (
        (train, 1437 if name == "saccade-digits" else 2000),
        (test, 360 if name == "saccade-digits" else 500),
    ):
        counts = np.bincount(ds.labels, minlength=10)
        assert len(ds) == n and counts.min() >= 0.9 * counts.max() and len(counts) == 10
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=8)))
    assert batch[0].shape == (8, info.time_steps, *info.input_shape)


def test_saccade_digits_are_sparse_and_learnable(sets):
    x, y = stack(sets["saccade-digits", "train"])
    xt, yt = stack(sets["saccade-digits", "test"])
    active = (x > 0).mean()
    assert 0.001 < active < 0.05  # N-MNIST-like: ~1 % of entries
    clf = RidgeClassifier(alpha=10.0).fit(x.sum(axis=(1, 2)).reshape(len(x), -1), y)
    accuracy = clf.score(xt.sum(axis=(1, 2)).reshape(len(xt), -1), yt)
    assert accuracy > 0.6, accuracy  # chance: 0.1


def test_randman_is_sparse_timing_and_learnable(sets):
    x, y = stack(sets["randman", "train"])
    xt, yt = stack(sets["randman", "test"])
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert 0.01 < x.mean() < 0.05  # SHD-like: a few % of entries

    # The classes differ in spike timing: counts over 20-bin windows separate them.
    def windows(a):
        return a.reshape(len(a), 5, 20, 700).sum(2).reshape(len(a), -1)

    accuracy = RidgeClassifier(alpha=10.0).fit(windows(x), y).score(windows(xt), yt)
    assert accuracy > 0.4, accuracy  # chance: 0.1


def test_determinism_with_seed():
    from sklearn.datasets import load_digits

    images = load_digits().images[:6]
    a, b, c = (saccade_digit_events(images, seed=s, duration_ms=40) for s in (1, 1, 2))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))
    full = saccade_digit_events(images, seed=1)  # the same batch, the whole 300 ms
    assert all(np.array_equal(f[f["t"] < 40000], s) for f, s in zip(full, a))  # prefix property
    r1, r2, r3 = (randman_events(s, 3, 0) for s in (5, 5, 6))
    assert all(np.array_equal(p, q) for p, q in zip(r1, r2))
    assert not np.array_equal(r1[1], r3[1])
    train, test = randman_events(5, 3, 0), randman_events(5, 3, 1)
    assert not np.array_equal(train[1], test[1])


def test_seed_option_keys_the_cache(tmp_path):
    a = load_dataset("randman", "test", data_dir=tmp_path, seed=1)
    b = load_dataset("randman", "test", data_dir=tmp_path, seed=1)
    c = load_dataset("randman", "test", data_dir=tmp_path, seed=2)
    assert a.entry == b.entry != c.entry
    assert torch.equal(a[0][0], b[0][0]) and not torch.equal(a[0][0], c[0][0])
    with pytest.raises(ValueError, match="cache=True"):
        load_dataset("randman", "test", data_dir=tmp_path, cache=False)
