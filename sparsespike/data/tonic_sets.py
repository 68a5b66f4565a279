"""N-MNIST, SHD, SSC and DVS Gesture through tonic's own dataset classes, without surprise downloads.

tonic downloads whenever its `_check_exists()` fails, and for N-MNIST that check wants the
archive `train.zip`/`test.zip` next to the extracted folder *and* at least 10,000 `.bin` files
(DVS Gesture: 100 `.npy` files; SHD/SSC: the `.h5.zip` archive). Here the files are checked first
by this module (so a missing or corrupt file gets a clear error naming it), and the tonic class is
then constructed through a subclass of the same name (tonic derives its folder from the class name)
whose `_check_exists` returns True and whose `download` refuses. So any non-empty folder in the
official layout loads, archives or not, and tonic never touches the network. Only with
`download=True` is tonic's original class constructed, which downloads what is missing.

Nothing wrong is decoded silently: stray files or folders in a tree (other than hidden files
such as .DS_Store), labels outside the dataset's classes, empty files or splits, events outside
the sensor, negative/NaN/Inf or unsorted times each raise an error naming the file (and count).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .errors import CorruptDataError, checked_index, missing_files
from .frames import (
    check_events,
    denoise,
    normalized_time_bins,
    time_bin_frames,
    time_window_frames,
)

__all__ = ["EventFrames", "dvsgesture", "hsd", "nmnist"]

_DOWNLOAD_HINT = (
    "Pass download=True (CLI: --download) to let tonic download them into {root}, "
    "or put the official files at these paths (data_dir or $SPARSESPIKE_DATA; default ~/.cache/sparsespike)."
)


def _offline(cls):
    """`cls` with tonic's existence check and downloader disabled (files were checked here)."""

    def download(self):
        raise RuntimeError(f"{cls.__name__}: download refused (download=False)")

    return type(cls.__name__, (cls,), {"_check_exists": lambda self: True, "download": download})


class EventFrames(torch.utils.data.Dataset):
    """Decodes a tonic dataset's events into frames on every access (what the cache stores).

    Items are (float32 tensor of the frame shape, int label). Errors while reading sample i are
    re-raised as CorruptDataError naming `file_of(i)`, and so is a label outside
    [0, info.num_classes).
    """

    def __init__(self, events, convert: Callable, frame_shape, file_of: Callable, label_map=None, info=None,
                 many_per_file: bool = False):
        self.events = events
        self.many_per_file = many_per_file  # messages then name the sample inside the file too
        self.convert = convert
        self.frame_shape = tuple(frame_shape)
        self.file_of = file_of
        self.label_map = label_map
        self.info = info
        self.length = len(events)

    def __len__(self) -> int:
        return self.length

    def frames(self, index: int) -> tuple[np.ndarray, int]:
        """(integer frames as numpy, label): the cache's input."""
        index = checked_index(index, self.length)
        try:
            ev, label = self.events[index]
            frames = self.convert(ev)
        except CorruptDataError:
            raise
        except Exception as e:  # tonic/h5py/numpy errors: name the file they came from
            why = str(e) if type(e) is ValueError else f"{type(e).__name__}: {e}"  # ours: checks
            raise CorruptDataError(self.file_of(index), f"sample {index}: {why}" if self.many_per_file else why) from e
        label = int(label)
        label = self.label_map(label) if self.label_map else label
        if self.info is not None and not 0 <= label < self.info.num_classes:
            raise CorruptDataError(self.file_of(index), f"label {label} outside 0..{self.info.num_classes - 1}")
        return frames, label

    def __getitem__(self, index: int):
        frames, label = self.frames(index)
        return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)), label

    def iter_frames(self):
        for i in range(self.length):
            yield self.frames(i)


def _fingerprint(paths: list[Path], root: Path) -> str:
    """Names, sizes and mtimes (ns) of the source files, digested: edits invalidate the cache.

    mtime_ns catches a file replaced by another of the same size; a content digest would too
    but reads every byte (~5x the cost of stat on 10,000 cached 20 kB files, far more when cold).
    """
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _listing(folder: Path, what: str, sub: tuple, leaf: tuple, suffix: str) -> list[Path]:
    """Sorted data files of a two-level tree `folder/<sub>/<leaf>` (each a (regex, description)).

    Anything else raises ValueError naming it: tonic walks the whole tree and would crash on it or
    read it under a wrong label. Hidden files are ignored (.DS_Store) unless their name ends in
    `suffix`, since tonic would read those (macOS `._00001.bin`).
    """
    if not folder.is_dir():
        return []

    def entries(d: str, pattern: tuple, want_dir: bool):
        with os.scandir(d) as it:  # DirEntry types come from readdir: no stat per file
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            is_dir = e.is_dir()
            if e.name.startswith(".") and not is_dir and not e.name.endswith(suffix):
                continue
            if is_dir != want_dir or not re.fullmatch(pattern[0], e.name):
                raise ValueError(f"unexpected {'folder' if is_dir else 'file'} {e.path} in the {what} tree: "
                                 f"only {pattern[1]} belong in {d} (hidden files like .DS_Store are ignored)")
            yield e.path

    return [Path(f) for d in entries(str(folder), sub, True) for f in entries(d, leaf, False)]


# ---------------------------------------------------------------- N-MNIST

def _nmnist_files(folder: Path) -> list[Path]:
    # tonic takes the label from the folder name's last character: "10/" would read as 0
    return _listing(folder, "N-MNIST", (r"[0-9]", "digit folders 0-9"), (r"[^.].*\.bin", "<NNNNN>.bin files"), "bin")


def nmnist(root: Path, split: str, download: bool, time_steps: int, time_window_us: float,
           denoise_us: float, info=None) -> tuple[EventFrames, str]:
    """N-MNIST at `root/NMNIST/{Train,Test}/<digit>/*.bin`: denoise, 1 ms frames, first T frames."""
    import tonic

    folder = root / "NMNIST" / ("Train" if split == "train" else "Test")
    files = _nmnist_files(folder)
    if not files and download:
        tonic.datasets.NMNIST(save_to=str(root), train=split == "train")
        files = _nmnist_files(folder)
    if not files:
        raise missing_files(
            f"N-MNIST {split} split not found",
            [str(folder / "<digit 0-9>" / "<NNNNN>.bin")],
            "(the extracted official " + ("train.zip" if split == "train" else "test.zip") + "). "
            + _DOWNLOAD_HINT.format(root=root),
        )
    for f in files:
        size = f.stat().st_size
        if size % 5 or size == 0:
            raise CorruptDataError(f, f"{size} bytes is not a positive multiple of 5 (40-bit events): truncated")
    ds = _offline(tonic.datasets.NMNIST)(save_to=str(root), train=split == "train")
    if len(ds.data) != len(files):
        raise RuntimeError(f"tonic found {len(ds.data)} .bin files under {folder}, expected {len(files)}")
    sensor = tonic.datasets.NMNIST.sensor_size

    def convert(ev):
        check_events(ev, sensor)
        if denoise_us:
            ev = denoise(ev, denoise_us)
        return time_window_frames(ev, sensor, time_window_us, time_steps)

    return (
        EventFrames(ds, convert, (time_steps, 2, 34, 34), lambda i: ds.data[i], info=info),
        _fingerprint(files, root),
    )


# ---------------------------------------------------------------- SHD / SSC

_H5_DATASETS = ("spikes/times", "spikes/units", "labels", "extra/keys", "extra/speaker")
# Classes in the files (SHD: 10 digits x 2 languages, folded to 10 by fold_labels; SSC: 35 words).
_H5_CLASSES = {"shd": 20, "ssc": 35}


def _check_h5(path: Path, classes: int) -> int:
    """Number of samples in an SHD/SSC file; CorruptDataError naming it when unusable, empty, or
    when a label lies outside 0..classes-1 (label % 10 would fold it silently into range)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CorruptDataError(path, f"not a readable HDF5 file ({e}); gunzip the official .h5.gz first") from e
    with f:
        absent = [name for name in _H5_DATASETS if name not in f]
        if absent:
            raise CorruptDataError(path, f"missing HDF5 dataset(s) {', '.join(absent)}")
        try:
            labels = np.asarray(f["labels"][()])
            lengths = {name: len(f[name]) for name in ("spikes/times", "spikes/units")}
        except Exception as e:  # a group where a dataset belongs, a scalar, an unreadable chunk
            raise CorruptDataError(path, f"unreadable labels or spikes ({type(e).__name__}: {e})") from e
    n = len(labels) if labels.ndim == 1 else -1
    if n < 0 or not np.issubdtype(labels.dtype, np.integer):
        raise CorruptDataError(path, f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if n == 0:
        raise CorruptDataError(path, "no samples (labels is empty)")
    for name, length in lengths.items():
        if length != n:
            raise CorruptDataError(path, f"{name} has {length} entries, labels has {n}")
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if len(bad):
        raise CorruptDataError(path, f"{len(bad)} of {n} labels outside 0..{classes - 1} "
                               f"(sample {bad[0]}: {labels[bad[0]]})")
    return n


def hsd(root: Path, name: str, split: str, download: bool, time_steps: int, fold_labels: bool,
        info=None) -> tuple[EventFrames, str]:
    """SHD or SSC at `root/{SHD,SSC}/{shd,ssc}_<split>.h5`: the study's 100 normalised time bins."""
    import tonic

    cls = tonic.datasets.SHD if name == "shd" else tonic.datasets.SSC
    path = root / cls.__name__ / f"{name}_{split}.h5"
    if not path.is_file() and download:
        if name == "shd":
            cls(save_to=str(root), train=split == "train")
        else:
            cls(save_to=str(root), split=split)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected the gunzipped HDF5 file {path.name}")
    if not path.is_file():
        raise missing_files(
            f"{cls.__name__} {split} split not found",
            [str(path)],
            f"(the official {path.name}.gz from https://zenkelab.org/datasets/, gunzipped). "
            + _DOWNLOAD_HINT.format(root=root),
        )
    n = _check_h5(path, _H5_CLASSES[name])
    off = _offline(cls)
    ds = off(save_to=str(root), train=split == "train") if name == "shd" else off(save_to=str(root), split=split)

    def convert(ev):
        return normalized_time_bins(ev["t"], ev["x"], time_steps, 700)

    frames = EventFrames(ds, convert, (time_steps, 700), lambda i: path,
                         label_map=(lambda y: y % 10) if fold_labels else None, info=info, many_per_file=True)
    frames.length = n  # tonic's __len__ reopens the file on every call
    st = path.stat()
    return frames, f"{st.st_size}:{st.st_mtime_ns}"


# ---------------------------------------------------------------- DVS Gesture

def _gesture_files(folder: Path) -> list[Path]:
    # tonic parses user<NN>_<lighting> and <label>.npy with int() and crashes on anything else
    return _listing(folder, "DVS Gesture", (r"user[0-9]+_.+", "user<NN>_<lighting> folders"),
                    (r"(10|[0-9])\.npy", "<label 0-10>.npy files"), "npy")


def dvsgesture(root: Path, split: str, download: bool, time_steps: int, size: int,
               denoise_us: float, info=None) -> tuple[EventFrames, str]:
    """DVS Gesture (tonic's preprocessed npy version): denoise, 128x128 -> size x size, T bins.

    The 128x128 sensor is pooled to `size` x `size` (x' = x * size // 128) and each recording
    (~6 s) is cut into `time_steps` equal windows (tonic's ToFrame(n_time_bins)), so the visual
    models built for N-MNIST ([T, 2, 34, 34]) run on it unchanged. 1 ms windows as for N-MNIST
    would cover only the first 25 ms of a gesture.
    """
    import tonic

    sub = "ibmGestureTrain" if split == "train" else "ibmGestureTest"
    folder = root / "DVSGesture" / sub
    files = _gesture_files(folder)
    if not files and download:
        tonic.datasets.DVSGesture(save_to=str(root), train=split == "train")
        files = _gesture_files(folder)
    if not files:
        raise missing_files(
            f"DVS Gesture {split} split not found",
            [str(folder / "user<NN>_<lighting>" / "<label>.npy")],
            f"(tonic's preprocessed {sub}.tar.gz, extracted). " + _DOWNLOAD_HINT.format(root=root),
        )
    ds = _offline(tonic.datasets.DVSGesture)(save_to=str(root), train=split == "train")
    sensor = (size, size, 2)

    def convert(ev):
        check_events(ev, tonic.datasets.DVSGesture.sensor_size)
        if denoise_us:
            ev = denoise(ev, denoise_us)
        small = np.empty(len(ev), dtype=[("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
        small["x"] = ev["x"].astype(np.int64) * size // 128
        small["y"] = ev["y"].astype(np.int64) * size // 128
        small["t"] = ev["t"]
        small["p"] = ev["p"]
        return time_bin_frames(small, sensor, time_steps)

    return (
        EventFrames(ds, convert, (time_steps, 2, size, size), lambda i: ds.data[i], info=info),
        _fingerprint(files, root),
    )
