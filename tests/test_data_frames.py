"""The vectorised transforms equal tonic's own (Denoise, ToFrame) and the study's SHD binning."""

import numpy as np
import pytest
import tonic.transforms as T

from sparsespike.data import denoise, normalized_time_bins, time_bin_frames, time_window_frames

DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


def random_events(rng, n):
    ev = np.zeros(n, DTYPE)
    ev["x"] = rng.integers(0, rng.integers(1, 35), n)
    ev["y"] = rng.integers(0, rng.integers(1, 35), n)
    ev["t"] = np.sort(rng.integers(0, rng.integers(1, 60000), n))  # ties included
    ev["p"] = rng.integers(0, 2, n)
    return ev


@pytest.mark.parametrize("seed", range(4))
def test_denoise_and_frames_equal_tonic(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        ev = random_events(rng, int(rng.integers(1, 400)))
        ft = int(rng.choice([50, 1000, 10000]))
        kept = T.Denoise(filter_time=ft)(ev.copy())
        np.testing.assert_array_equal(denoise(ev, ft), kept)
        tw = int(rng.choice([333, 1000, 5000]))
        ref = T.ToFrame(sensor_size=(34, 34, 2), time_window=tw)(kept.copy())
        padded = np.zeros((25, 2, 34, 34))
        padded[: min(25, len(ref))] = ref[:25]
        np.testing.assert_array_equal(time_window_frames(kept, (34, 34, 2), tw, 25), padded)
        if len(kept):
            ref = T.ToFrame(sensor_size=(34, 34, 2), n_time_bins=7)(kept.copy())
            np.testing.assert_array_equal(time_bin_frames(kept, (34, 34, 2), 7), ref)


def test_empty_and_out_of_range():
    empty = np.zeros(0, DTYPE)
    assert len(denoise(empty, 10000)) == 0
    assert not time_window_frames(empty, (34, 34, 2), 1000, 25).any()
    ev = np.zeros(2, DTYPE)
    ev["x"] = [3, 34]
    ev["t"] = [0, 5000]
    with pytest.raises(ValueError, match="'x' outside the sensor range"):
        time_window_frames(ev, (34, 34, 2), 1000, 25)


def study_bins(times, units, n_bins=100, channels=700):
    """The study's per-event loop (Dataloaders/shd_loader.py), written out."""
    dense = np.zeros((n_bins, channels), np.float32)
    if len(times) > 0:
        max_time = times.max()
        with np.errstate(invalid="ignore", divide="ignore"):
            idx = (times / max_time * (n_bins - 1)).astype(int)
        for t, c in zip(idx, units.astype(int)):
            if 0 <= t < n_bins and 0 <= c < channels:
                dense[t, c] = 1.0
    return dense


def test_normalized_time_bins_equal_study_loop():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(0, 3000))
        times = np.sort((rng.uniform(0, 1, n).astype(np.float16).astype(np.float64) * 1e6).astype(np.int64))
        units = rng.integers(0, 700, n)
        np.testing.assert_array_equal(normalized_time_bins(times, units, 100, 700), study_bins(times, units))
    zero = np.zeros(3, np.int64)
    np.testing.assert_array_equal(normalized_time_bins(zero, zero, 100, 700), study_bins(zero, zero))
