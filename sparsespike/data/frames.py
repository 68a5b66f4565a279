"""Event -> frame conversions, vectorised with numpy (no per-event Python loop).

Each function reproduces a transform of the study exactly (checked against tonic's own
transforms in tests/test_data_frames.py):

- `denoise`: tonic.transforms.Denoise (tonic/functional/denoise.py), which loops over events in
  Python; here one pass of sorts and searchsorted.
- `time_window_frames`: tonic.transforms.ToFrame(time_window=...) (slices [t0 + i*w, t0 + (i+1)*w)
  from the first event time t0, only complete windows), then the first `time_steps` frames,
  zero-padded when the recording is shorter (the study's collate_fn).
- `time_bin_frames`: ToFrame(n_time_bins=...) (window = (t_last - t0) // n, events past n windows
  dropped).
- `normalized_time_bins`: the study's SHD binning (Dataloaders/shd_loader.py): bin =
  int(t / t_max * (bins - 1)), binary.
"""

from __future__ import annotations

import numpy as np

__all__ = ["denoise", "time_window_frames", "time_bin_frames", "normalized_time_bins"]


def denoise(events: np.ndarray, filter_time: float) -> np.ndarray:
    """Keep an event when one of its 4 neighbours fired less than `filter_time` before it.

    Same result as tonic.transforms.Denoise, including its edge cases: a neighbour that has not
    fired yet counts as having fired at time 0 (so early events pass if t < filter_time), and
    the grid is (max x + 1) x (max y + 1) of this sample.
    """
    n = len(events)
    if n == 0:
        return events[:0]
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"]
    width = int(x.max()) + 1
    height = int(y.max()) + 1
    index = np.arange(n, dtype=np.int64)
    # Keys sorted by (pixel, event index): the latest earlier event at pixel q before event i is
    # the key just below q * n + i.
    keys = np.sort((x * height + y) * n + index)
    memory_t = t.astype(np.float64)
    keep = np.zeros(n, dtype=bool)
    for dx, dy, inside in (
        (-1, 0, x > 0),
        (1, 0, x < width - 1),
        (0, -1, y > 0),
        (0, 1, y < height - 1),
    ):
        q = (x + dx) * height + (y + dy)
        pos = np.searchsorted(keys, q * n + index) - 1
        found = (pos >= 0) & (keys[np.maximum(pos, 0)] // n == q)
        last = np.where(found, memory_t[keys[np.maximum(pos, 0)] % n], 0.0)
        keep |= inside & (last + filter_time > t)
    return events[keep]


def _accumulate(frames: np.ndarray, slot, p, y, x) -> None:
    """frames[slot, p, y, x] += 1 for each event (bincount on flat indices, no np.add.at)."""
    flat = np.ravel_multi_index((slot, p, y, x), frames.shape)
    frames += np.bincount(flat, minlength=frames.size).reshape(frames.shape).astype(frames.dtype)


def _check_range(events, sensor_size) -> None:
    w, h, pol = sensor_size
    for name, size in (("x", w), ("y", h), ("p", pol)):
        v = events[name]
        if len(v) and (int(v.min()) < 0 or int(v.max()) >= size):
            raise ValueError(f"event field {name!r} outside the sensor range [0, {size})")


def time_window_frames(
    events: np.ndarray, sensor_size: tuple[int, int, int], time_window: float, time_steps: int
) -> np.ndarray:
    """Counts per (frame, polarity, y, x) in windows of `time_window`: [time_steps, P, H, W] int32."""
    w, h, pol = sensor_size
    frames = np.zeros((time_steps, pol, h, w), dtype=np.int32)
    if len(events) == 0:
        return frames
    _check_range(events, sensor_size)
    t = events["t"]
    t0, t_last = t[0], t[-1]
    n_slices = max(int(np.floor((t_last - t0 - time_window) / time_window) + 1), 1)
    starts = np.arange(min(n_slices, time_steps)) * time_window + t0
    slot = np.searchsorted(starts, t, side="right") - 1
    ok = (slot >= 0) & (t < starts[np.maximum(slot, 0)] + time_window)
    _accumulate(frames, slot[ok], events["p"][ok].astype(np.int64), events["y"][ok], events["x"][ok])
    return frames


def time_bin_frames(
    events: np.ndarray, sensor_size: tuple[int, int, int], n_time_bins: int
) -> np.ndarray:
    """Counts in `n_time_bins` equal windows spanning the recording: [n, P, H, W] int32."""
    w, h, pol = sensor_size
    frames = np.zeros((n_time_bins, pol, h, w), dtype=np.int32)
    if len(events) == 0:
        return frames
    _check_range(events, sensor_size)
    t = events["t"]
    window = (t[-1] - t[0]) // n_time_bins
    if window <= 0:  # tonic's windows are then empty
        return frames
    starts = np.arange(n_time_bins) * window + t[0]
    slot = np.searchsorted(starts, t, side="right") - 1
    ok = (slot >= 0) & (t < starts[np.maximum(slot, 0)] + window)
    _accumulate(frames, slot[ok], events["p"][ok].astype(np.int64), events["y"][ok], events["x"][ok])
    return frames


def normalized_time_bins(
    times: np.ndarray, units: np.ndarray, n_bins: int, n_channels: int
) -> np.ndarray:
    """The study's SHD binning: [n_bins, n_channels] float32, 1 where a unit fired in a bin.

    Times are divided by the sample's own maximum; a sample whose maximum time is 0 gives an
    empty frame, as in the study (its division yields NaN bins that its bounds check drops).
    """
    frames = np.zeros((n_bins, n_channels), dtype=np.float32)
    if len(times) == 0:
        return frames
    t_max = times.max()
    if not t_max > 0:
        return frames
    bins = (times / t_max * (n_bins - 1)).astype(np.int64)
    units = units.astype(np.int64)
    ok = (bins >= 0) & (bins < n_bins) & (units >= 0) & (units < n_channels)
    frames[bins[ok], units[ok]] = 1.0
    return frames
