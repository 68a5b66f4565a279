"""The dataset registry: DatasetInfo, DATASETS, dataset_info() and load_dataset()."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import open_or_build

__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "default_data_dir", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset's items look like: frames [time_steps, *input_shape] float32, int labels."""

    name: str
    modality: str  # "visual" | "audio"
    input_shape: tuple[int, ...]  # per time step
    time_steps: int
    num_classes: int
    splits: tuple[str, ...]
    embedded: bool
    files: tuple[str, ...]  # paths relative to data_dir that must exist (empty when embedded)


_VISUAL = (2, 34, 34)
DATASETS: dict[str, DatasetInfo] = {
    "nmnist": DatasetInfo("nmnist", "visual", _VISUAL, 25, 10, ("train", "test"), False,
                          ("NMNIST/Train/<digit>/<NNNNN>.bin", "NMNIST/Test/<digit>/<NNNNN>.bin")),
    "shd": DatasetInfo("shd", "audio", (700,), 100, 10, ("train", "test"), False,
                       ("SHD/shd_train.h5", "SHD/shd_test.h5")),
    "ssc": DatasetInfo("ssc", "audio", (700,), 100, 35, ("train", "valid", "test"), False,
                       ("SSC/ssc_train.h5", "SSC/ssc_valid.h5", "SSC/ssc_test.h5")),
    "dvsgesture": DatasetInfo("dvsgesture", "visual", _VISUAL, 25, 11, ("train", "test"), False,
                              ("DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy",
                               "DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy")),
    "saccade-digits": DatasetInfo("saccade-digits", "visual", _VISUAL, 25, 10, ("train", "test"), True, ()),
    "randman": DatasetInfo("randman", "audio", (700,), 100, 10, ("train", "test"), True, ()),
}

# Options each dataset accepts, with defaults (they enter the cache key).
_OPTIONS: dict[str, dict] = {
    "nmnist": {"time_steps": 25, "time_window_us": 1000, "denoise_us": 10000},
    "shd": {"time_steps": 100, "fold_labels": True},
    "ssc": {"time_steps": 100},
    "dvsgesture": {"time_steps": 25, "denoise_us": 10000},
    "saccade-digits": {"seed": 0, "time_steps": 25, "time_window_us": 1000},
    "randman": {"seed": 0, "time_steps": 100},
}


def _spec(name: str) -> DatasetInfo:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}; known: {', '.join(DATASETS)}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _options(name: str, options: dict) -> dict:
    """Defaults merged with `options`, each checked: int() or bool() would silently turn 2.5 into
    2, "no" into True and NaN/Inf into a cache key."""
    allowed = _OPTIONS[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"dataset {name!r} has no option(s) {', '.join(unknown)}; "
                        f"options: {', '.join(f'{k}={v!r}' for k, v in allowed.items())}")
    merged = {**allowed, **options}
    for key, value in merged.items():
        if isinstance(allowed[key], bool):
            if not isinstance(value, bool):
                raise TypeError(f"{key} must be True or False, got {value!r}")
        elif isinstance(allowed[key], int) and key in ("time_steps", "seed"):
            if not _is_int(value):
                raise TypeError(f"{key} must be an int, got {value!r}")
            merged[key] = int(value)  # numpy ints: the same cache key as Python ints
        elif not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)):
            raise TypeError(f"{key} must be a finite number, got {value!r}")
    if merged["time_steps"] < 1:
        raise ValueError(f"time_steps must be >= 1, got {merged['time_steps']!r}")
    if merged.get("seed", 0) < 0:
        raise ValueError(f"seed must be >= 0, got {merged['seed']!r}")
    if "denoise_us" in merged and not merged["denoise_us"] >= 0:
        raise ValueError(f"denoise_us must be >= 0 (0: no denoising), got {merged['denoise_us']!r}")
    if "time_window_us" in merged and not merged["time_window_us"] > 0:
        raise ValueError(f"time_window_us must be > 0, got {merged['time_window_us']!r}")
    return merged


def _folder(value, arg: str) -> Path:
    """`value` as a Path; TypeError naming `arg` when it is no path, ValueError when it is a file."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{arg} must be a path (str or os.PathLike), got {type(value).__name__}")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{arg} {path} is a file, not a folder")
    return path


def dataset_info(name: str, **options) -> DatasetInfo:
    """The DatasetInfo of `name` after `options` (e.g. shd with fold_labels=False: 20 classes)."""
    info = _spec(name)
    opts = _options(name, options)
    changes = {"time_steps": int(opts["time_steps"])}
    if name == "shd" and not opts["fold_labels"]:
        changes["num_classes"] = 20
    return dataclasses.replace(info, **changes)


def default_data_dir() -> Path:
    """$SPARSESPIKE_DATA, else sparsespike's folder in the user's cache ($XDG_CACHE_HOME or
    ~/.cache): never the current directory, so a checkout or a run folder collects no data."""
    if os.environ.get("SPARSESPIKE_DATA"):
        return Path(os.environ["SPARSESPIKE_DATA"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sparsespike"


def _source(name: str, split: str, root: Path, download: bool, opts: dict, info: DatasetInfo):
    """(decoding dataset or None, builder () -> (iterable, count), source fingerprint)."""
    from . import tonic_sets

    T = int(opts["time_steps"])
    if name == "nmnist":
        ds, fp = tonic_sets.nmnist(root, split, download, T, float(opts["time_window_us"]),
                                   float(opts["denoise_us"]), info=info)
    elif name in ("shd", "ssc"):
        ds, fp = tonic_sets.hsd(root, name, split, download, T, bool(opts.get("fold_labels", False)), info=info)
    elif name == "dvsgesture":
        ds, fp = tonic_sets.dvsgesture(root, split, download, T, 34, float(opts["denoise_us"]), info=info)
    elif name == "saccade-digits":
        from .saccade_digits import saccade_digits

        return None, lambda: saccade_digits(split, int(opts["seed"]), T, float(opts["time_window_us"])), "sklearn-digits-v1"
    else:
        from .randman import randman

        # the generator's version enters the cache key: a changed generator never reads old frames
        return None, lambda: randman(split, int(opts["seed"]), T), "randman-v2"
    return ds, lambda: (ds.iter_frames(), len(ds)), fp


def load_dataset(name: str, split: str = "train", data_dir=None, download: bool = False,
                 cache_dir=None, cache: bool = True, **options) -> torch.utils.data.Dataset:
    """A Dataset of (frames float32 [time_steps, *input_shape], int label); `.info` describes it.

    data_dir: where the files are (default $SPARSESPIKE_DATA or ~/.cache/sparsespike); tonic downloads into it
    only when download=True. cache_dir: where converted frames are kept (default
    <data_dir>/cache); cache=False decodes events on every access instead (tonic-backed sets).
    options: per dataset, see `_OPTIONS` (time_steps, fold_labels for shd, seed for embedded sets).

    Bad input raises before anything is written: TypeError/ValueError naming the argument,
    FileNotFoundError listing missing files, CorruptDataError (a ValueError) naming a bad data file
    (labels out of range, events outside the sensor, NaN/Inf/negative times, empty files or
    splits, stray files in the folder tree), PermissionError naming an unwritable cache folder.
    """
    info = dataset_info(name, **options)
    opts = _options(name, options)
    if not isinstance(split, str) or split not in info.splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(info.splits)}")
    for arg, value in (("download", download), ("cache", cache)):
        if not isinstance(value, bool):
            raise TypeError(f"{arg} must be True or False, got {value!r}")
    if data_dir is not None:
        root = _folder(data_dir, "data_dir")
    else:
        root = _folder(default_data_dir(), "data_dir ($SPARSESPIKE_DATA or ~/.cache/sparsespike)")
    cdir = _folder(cache_dir, "cache_dir") if cache_dir is not None else root / "cache"
    decoder, build, fingerprint = _source(name, split, root, download, opts, info)
    if not cache:
        if decoder is None:
            raise ValueError(f"dataset {name!r} is generated in one pass: it needs cache=True")
        return decoder
    key = {"dataset": name, "split": split, "options": opts, "source": fingerprint}
    return open_or_build(cdir, key, (info.time_steps, *info.input_shape), build, info=info,
                         default_location=cache_dir is None)
