""""randman": a Randman-style synthetic spike-timing dataset (after Zenke & Vogels 2021).

Each class c is a random smooth manifold: a map f_c from intrinsic coordinates u in [0, 1]^d to
[0, 1]^(700 k), every output a product over the d coordinates of random Fourier series with
amplitudes ~ 1/n^alpha (alpha sets the smoothness). A sample draws u uniformly and gives each of
the 700 channels k spikes, at times f_c(u) * step_frac * T. To make it learnable but not trivial
every class manifold mixes a manifold shared by all classes with its own (`class_weight` of the
latter), spike times are jittered (`jitter` bins, Gaussian) and a fraction `drop` of spikes is
deleted. Binned like SHD: binary [T=100, 700], a few % of entries active. The information is in
spike timing; every channel fires about k times in every class. The defaults (class_weight 0.6,
jitter 1 bin, drop 10%) were chosen so the study's audio M1 learns it in a few CPU minutes; with
0.25 / 3 bins / 30% it stayed near chance for 4 epochs.

Deterministic given `seed`; train and test samples come from the same class manifolds with
disjoint random streams; classes are balanced.
"""

from __future__ import annotations

import numpy as np

from .._checks import require_int

__all__ = ["randman", "randman_events", "randman_frames"]

CHANNELS = 700


def _manifold(rng, n_out: int, dim: int, n_basis: int, alpha: float):
    """Random smooth map [0,1]^dim -> [0,1]^n_out: returns f(u [S, dim]) -> [S, n_out]."""
    k = np.arange(1, n_basis + 1, dtype=np.float64)
    amp = rng.uniform(0, 1, size=(dim, n_out, n_basis)) / k**alpha
    amp = (amp / amp.sum(-1, keepdims=True)).astype(np.float32)
    freq = (rng.uniform(0.5, 1.0, size=(dim, n_out, 1)) * k * 2 * np.pi).astype(np.float32)
    phase = (rng.uniform(0, 1, size=(dim, n_out, n_basis)) * 2 * np.pi).astype(np.float32)

    def raw(u):
        u = u.astype(np.float32)
        out = np.ones((len(u), n_out), dtype=np.float32)
        for d in range(dim):
            arg = u[:, d, None, None] * freq[d] + phase[d]  # [S, n_out, n_basis]
            out *= 1.0 + (amp[d] * np.sin(arg)).sum(-1)  # each factor in [0, 2]
        return out

    # Normalise every output to [0, 1] over a grid of the intrinsic space.
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 64 if dim == 1 else 16)] * dim), -1).reshape(-1, dim)
    g = raw(grid)
    lo, hi = g.min(0), g.max(0)
    return lambda u: np.clip((raw(u) - lo) / np.maximum(hi - lo, 1e-9), 0.0, 1.0)


def randman_events(
    seed: int, samples_per_class: int, stream: int, num_classes: int = 10, time_steps: int = 100,
    spikes_per_channel: int = 3, dim: int = 2, alpha: float = 2.0, n_basis: int = 4,
    class_weight: float = 0.6, step_frac: float = 0.8, jitter: float = 1.0, drop: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spikes of one random `stream` (0 train, 1 test): (sample, bin, channel) arrays and labels.

    Samples are interleaved by class (0, 1, ..., 9, 0, 1, ...) so any prefix is balanced.
    """
    require_int(seed, "seed", 0)
    require_int(samples_per_class, "samples_per_class")
    require_int(stream, "stream", 0)
    require_int(num_classes, "num_classes")
    require_int(time_steps, "time_steps")
    require_int(spikes_per_channel, "spikes_per_channel")
    man_rng = np.random.default_rng([seed, 0])
    n_out = CHANNELS * spikes_per_channel
    shared = _manifold(man_rng, n_out, dim, n_basis, alpha)
    own = [_manifold(man_rng, n_out, dim, n_basis, alpha) for _ in range(num_classes)]
    rng = np.random.default_rng([seed, 1 + stream])
    unit = np.tile(np.arange(CHANNELS), spikes_per_channel)
    parts = []
    for c in range(num_classes):
        u = rng.uniform(0, 1, size=(samples_per_class, dim))
        times = (1 - class_weight) * shared(u) + class_weight * own[c](u)
        times = times * step_frac * time_steps + rng.normal(0, jitter, size=times.shape)
        bins = np.floor(times).astype(np.int64)
        keep = (rng.uniform(size=times.shape) >= drop) & (bins >= 0) & (bins < time_steps)
        s, j = np.nonzero(keep)
        parts.append((s * num_classes + c, bins[s, j], unit[j]))
    sample, bins, chan = (np.concatenate(a) for a in zip(*parts))
    order = np.argsort(sample, kind="stable")
    labels = np.tile(np.arange(num_classes), samples_per_class)
    return sample[order], bins[order], chan[order], labels


def randman_frames(seed: int, samples_per_class: int, stream: int, time_steps: int = 100, **kw):
    """Iterator of (binary frames [T, 700] float32, label) and the sample count."""
    sample, bins, chan, labels = randman_events(seed, samples_per_class, stream, time_steps=time_steps, **kw)
    bounds = np.searchsorted(sample, np.arange(len(labels) + 1))

    def gen():
        for i, label in enumerate(labels.tolist()):
            frame = np.zeros((time_steps, CHANNELS), dtype=np.float32)
            lo, hi = bounds[i], bounds[i + 1]
            frame[bins[lo:hi], chan[lo:hi]] = 1.0
            yield frame, label

    return gen(), len(labels)


def randman(split: str, seed: int, time_steps: int, train_per_class: int = 200, test_per_class: int = 50):
    """(iterator of (frames [T, 700], label), count) for the cache builder."""
    n = train_per_class if split == "train" else test_per_class
    return randman_frames(seed, n, 0 if split == "train" else 1, time_steps=time_steps)
