""""saccade-digits": scikit-learn's bundled 8x8 digits recorded like N-MNIST, by simulated saccades.

N-MNIST was recorded by moving an event camera in three saccades in front of an MNIST digit on a
monitor (Orchard et al. 2015): (0, 0) -> (3.5, 7) -> (7, 0) -> (0, 0) pixels, ~100 ms each. Here
each 8x8 digit (sklearn.datasets.load_digits: 1797 images, shipped with scikit-learn) is upscaled
to 26x26 on a 34x34 sensor and moved along the same path; a simulated DVS pixel emits an ON (p=1)
or OFF (p=0) event each time its brightness moves one contrast threshold away from the level at its
last event. Per-pixel threshold mismatch, timestamp jitter and background noise events come from
`seed`. The event streams then go through exactly the N-MNIST transform (denoise 10 ms, 1 ms
frames, first 25) -> [25, 2, 34, 34]. The split is fixed (stratified 80/20, independent of seed).
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import require_int
from .frames import denoise, time_window_frames

__all__ = ["saccade_digit_events", "saccade_digits", "split_indices"]

SENSOR = (34, 34, 2)
EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
_PATH = np.array([(0.0, 0.0), (3.5, 7.0), (7.0, 0.0), (0.0, 0.0)])  # (dx, dy) saccade corners
DIGIT_SIZE = 26


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The fixed stratified 80/20 train/test split of the 1797 digits."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=0.2, stratify=labels, random_state=0)
    return np.sort(train if split == "train" else test)


def _canvas(images: np.ndarray) -> np.ndarray:
    """[B, 8, 8] in 0..16 -> [B, 34, 34] brightness in [0, 1], digit upscaled at the top left."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
    up = torch.nn.functional.interpolate(x, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)
    out = np.zeros((len(images), 34, 34), dtype=np.float32)
    out[:, :DIGIT_SIZE, :DIGIT_SIZE] = up[:, 0].numpy()
    return out


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """img moved by (dx, dy) >= 0 pixels with bilinear interpolation (zeros enter at the edge)."""
    ix, iy = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - ix, dy - iy
    p = np.pad(img, ((0, 0), (iy + 1, 0), (ix + 1, 0)))  # room for the integer shift + 1
    h, w = img.shape[1:]

    def win(oy, ox):  # the image moved by (ix + ox, iy + oy)
        return p[:, 1 - oy: 1 - oy + h, 1 - ox: 1 - ox + w]

    return ((1 - fy) * ((1 - fx) * win(0, 0) + fx * win(0, 1)) + fy * ((1 - fx) * win(1, 0) + fx * win(1, 1)))


def saccade_digit_events(
    images: np.ndarray, seed, duration_ms: int | None = None, saccade_ms: int = 100,
    threshold: float = 0.15, noise_per_ms: float = 0.5,
) -> list[np.ndarray]:
    """Event streams (structured x, y, t us, p; sorted by t) for [B, 8, 8] digit images.

    The recording lasts 3 * saccade_ms ms; `duration_ms` stops it earlier. Random numbers are
    drawn millisecond by millisecond, so a shorter recording is an exact prefix of the full one.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (8, 8) or len(images) == 0:
        raise ValueError(f"images must be a non-empty [B, 8, 8] array (sklearn digits), got shape {images.shape}")
    require_int(saccade_ms, "saccade_ms")
    if duration_ms is not None:
        require_int(duration_ms, "duration_ms")
    rng = np.random.default_rng(seed)
    canvas = _canvas(images)
    b = len(images)
    thr = threshold * rng.uniform(0.8, 1.2, size=(b, 34, 34)).astype(np.float32)  # pixel mismatch
    ref = canvas.copy()  # brightness at each pixel's last event
    steps = 3 * saccade_ms if duration_ms is None else min(int(duration_ms), 3 * saccade_ms)
    parts = []  # (sample, t_us, y, x, p) per step
    for k in range(1, steps + 1):
        leg, frac = divmod(k / saccade_ms, 1.0)
        leg = int(leg)
        pos = _PATH[leg] + frac * (_PATH[leg + 1] - _PATH[leg]) if leg < 3 else _PATH[3]
        now = _shift(canvas, pos[0], pos[1])
        diff = now - ref
        n = np.floor(np.abs(diff) / thr).astype(np.int64)
        ref += np.sign(diff) * n * thr
        s, y, x = np.nonzero(n)
        reps = n[s, y, x]
        s, y, x = (np.repeat(a, reps) for a in (s, y, x))
        p = (diff[s, y, x] > 0).astype(np.int64)
        # Background activity: isolated events at random places (what denoise removes).
        ns = np.repeat(np.arange(b), rng.poisson(noise_per_ms, size=b))
        m = len(ns)
        s = np.concatenate([s, ns])
        y = np.concatenate([y, rng.integers(0, 34, m)])
        x = np.concatenate([x, rng.integers(0, 34, m)])
        p = np.concatenate([p, rng.integers(0, 2, m)])
        t = (k - 1) * 1000 + rng.integers(0, 1000, size=len(s))
        parts.append(np.stack([s, t, y, x, p], axis=1))
    ev = np.concatenate(parts)
    ev = ev[np.lexsort((ev[:, 1], ev[:, 0]))]
    bounds = np.searchsorted(ev[:, 0], np.arange(b + 1))
    out = []
    for i in range(b):
        chunk = ev[bounds[i]: bounds[i + 1]]
        e = np.empty(len(chunk), dtype=EVENT_DTYPE)
        e["t"], e["y"], e["x"], e["p"] = chunk[:, 1], chunk[:, 2], chunk[:, 3], chunk[:, 4]
        out.append(e)
    return out


def saccade_digits(split: str, seed: int, time_steps: int, time_window_us: float,
                   denoise_us: float = 10000, chunk: int = 256):
    """(iterator of (frames [T, 2, 34, 34] int, label), count) for the cache builder."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = split_indices(digits.target, split)
    # Frames only see the first time_steps windows and denoise is causal, so simulating a few ms
    # past them gives the same frames as the full 300 ms recording, ~10x faster.
    duration_ms = int(np.ceil(time_steps * time_window_us / 1000)) + 5

    def gen():
        for start in range(0, len(idx), chunk):
            sel = idx[start: start + chunk]
            # The seed of a chunk depends on the sample indices, so train and test never share noise.
            streams = saccade_digit_events(digits.images[sel], seed=[seed, int(sel[0])], duration_ms=duration_ms)
            for i, ev in zip(sel, streams):
                if denoise_us:
                    ev = denoise(ev, denoise_us)
                yield time_window_frames(ev, SENSOR, time_window_us, time_steps), int(digits.target[i])

    return gen(), len(idx)
