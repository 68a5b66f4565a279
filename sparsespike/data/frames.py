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

from .._checks import require_finite_number, require_int

__all__ = ["check_events", "denoise", "normalized_time_bins", "time_bin_frames", "time_window_frames"]


def _events(events, fields: str = "xytp") -> np.ndarray:
    """TypeError unless `events` is a 1-D structured array with these fields (tonic's layout)."""
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not isinstance(events, np.ndarray) or events.ndim != 1 or not set(fields) <= set(names):
        got = f"{events.dtype} {events.shape}" if isinstance(events, np.ndarray) else type(events).__name__
        raise TypeError(f"events must be a 1-D numpy structured array with fields {', '.join(fields)}, got {got}")
    return events


def _sensor(sensor_size) -> tuple[int, int, int]:
    if not (isinstance(sensor_size, (tuple, list)) and len(sensor_size) == 3):
        raise ValueError(f"sensor_size must be (width, height, polarities), got {sensor_size!r}")
    return tuple(require_int(v, f"sensor_size[{i}]") for i, v in enumerate(sensor_size))


def denoise(events: np.ndarray, filter_time: float) -> np.ndarray:
    """Keep an event when one of its 4 neighbours fired less than `filter_time` before it.

    Same result as tonic.transforms.Denoise, including its edge cases: a neighbour that has not
    fired yet counts as having fired at time 0 (so early events pass if t < filter_time), and
    the grid is (max x + 1) x (max y + 1) of this sample.
    """
    _events(events, "xyt")
    require_finite_number(filter_time, "filter_time", non_negative=True)
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
        bad = np.count_nonzero((v < 0) | (v >= size)) if len(v) else 0
        if bad:  # counted, never dropped: a wrong sensor size or a corrupt file must be seen
            raise ValueError(f"event field {name!r} outside the sensor range [0, {size}) in {bad} of {len(v)} events")


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int]) -> None:
    """ValueError unless a recording has events, all inside the sensor, with times >= 0 in order.

    Run on raw events before denoise: a filter would otherwise hide bad events silently.
    """
    _events(events)
    sensor_size = _sensor(sensor_size)
    n = len(events)
    if n == 0:
        raise ValueError("no events (an empty file, or one holding only overflow records)")
    _check_range(events, sensor_size)
    t = events["t"]
    # NaN/Inf cast to int64 land below 0; float times are tested for them directly (NaN compares false)
    bad = np.count_nonzero(~np.isfinite(t) | (t < 0)) if t.dtype.kind == "f" else np.count_nonzero(t < 0)
    if bad:
        raise ValueError(f"{bad} of {n} event times are negative, NaN or Inf")
    back = np.count_nonzero(np.diff(t) < 0)
    if back:  # slicing uses searchsorted and t[0] as the start: unsorted times give wrong frames
        raise ValueError(f"event times go backwards at {back} of {n} events (they must be sorted)")


def time_window_frames(
    events: np.ndarray, sensor_size: tuple[int, int, int], time_window: float, time_steps: int
) -> np.ndarray:
    """Counts per (frame, polarity, y, x) in windows of `time_window`: [time_steps, P, H, W] int32."""
    _events(events)
    w, h, pol = _sensor(sensor_size)
    require_finite_number(time_window, "time_window", positive=True)
    time_steps = require_int(time_steps, "time_steps")
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
    _events(events)
    w, h, pol = _sensor(sensor_size)
    n_time_bins = require_int(n_time_bins, "n_time_bins")
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
    Negative, NaN or Inf times and units outside [0, n_channels) raise ValueError with a count.
    """
    n_bins, n_channels = require_int(n_bins, "n_bins"), require_int(n_channels, "n_channels")
    times, units = np.asarray(times), np.asarray(units)
    if times.ndim != 1 or units.ndim != 1:
        raise ValueError(f"times and units must be 1-D, got shapes {times.shape} and {units.shape}")
    frames = np.zeros((n_bins, n_channels), dtype=np.float32)
    if len(times) != len(units):
        raise ValueError(f"{len(times)} spike times but {len(units)} units")
    if len(times) == 0:
        return frames
    # The study's bounds check dropped these silently; here they are refused with a count.
    bad = np.count_nonzero(~(times >= 0) | ~np.isfinite(times))
    if bad:
        raise ValueError(f"{bad} of {len(times)} spike times are negative, NaN or Inf")
    units = units.astype(np.int64)
    bad = np.count_nonzero((units < 0) | (units >= n_channels))
    if bad:
        raise ValueError(f"{bad} of {len(units)} spike units outside [0, {n_channels})")
    t_max = times.max()
    if not t_max > 0:
        return frames
    bins = (times / t_max * (n_bins - 1)).astype(np.int64)
    frames[bins, units] = 1.0
    return frames
