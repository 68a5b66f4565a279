"""Bad input to the data layer: every row builds one bad input in a tiny on-disk dataset (real
formats, read through tonic, network disabled) and expects a clear exception whose message names
the argument or the file. Nothing is cached from a refused input."""

import errno
import json
import math
import os

import h5py
import numpy as np
import pytest
from network_guard import no_network  # noqa: F401  (autouse)
from test_data_tonic import OVERFLOW, SHD_TRAIN, make_nmnist, write_bin, write_hsd

from sparsespike.data import (
    CachedFrames,
    CorruptDataError,
    dataset_info,
    denoise,
    load_dataset,
    normalized_time_bins,
    randman_events,
    randman_frames,
    saccade_digit_events,
    time_bin_frames,
    time_window_frames,
)
from sparsespike.data.cache import open_or_build
from sparsespike.data.frames import check_events

EVENTS = np.zeros(3, np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
FLOAT_TIMES = np.zeros(3, np.dtype([("x", int), ("y", int), ("t", float), ("p", int)]))
FLOAT_TIMES["t"] = [0.0, 1.0, np.nan]


def unwritable(monkeypatch, folder):
    """Creating anything under `folder` fails as on a read-only mount (works when run as root)."""
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(folder)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


# ------------------------------------------------------------------ builders: (tmp, mp) -> call
def nmnist_with(relpath, content=b"", folder=False):
    def build(tmp, mp):
        make_nmnist(tmp)
        p = tmp / "NMNIST" / "Train" / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        p.mkdir() if folder else p.write_bytes(content)
        return lambda: load_dataset("nmnist", data_dir=tmp)

    return build


def nmnist_events(events, cache=True):
    def build(tmp, mp):
        make_nmnist(tmp)
        write_bin(tmp / "NMNIST" / "Train" / "3" / "00009.bin", events)
        if cache:
            return lambda: load_dataset("nmnist", data_dir=tmp)
        ds = load_dataset("nmnist", data_dir=tmp, cache=False)  # decodes on access
        return lambda: [ds[i] for i in range(len(ds))]

    return build


def shd_with(samples, labels_dtype=np.uint16, name="shd", n_classes=20, **options):
    def build(tmp, mp):
        path = tmp / name.upper() / f"{name}_train.h5"
        write_hsd(path, [(t, u, 0) for t, u, _ in samples], n_classes=n_classes)
        with h5py.File(path, "a") as f:  # labels as given, of any dtype
            del f["labels"]
            f["labels"] = np.asarray([s[2] for s in samples], labels_dtype)
        return lambda: load_dataset(name, data_dir=tmp, **options)

    return build


def shd_raw(content):
    def build(tmp, mp):
        (tmp / "SHD").mkdir()
        (tmp / "SHD" / "shd_train.h5").write_bytes(content)
        return lambda: load_dataset("shd", data_dir=tmp)

    return build


def shd_spikes(times, units):
    def build(tmp, mp):
        write_hsd(tmp / "SHD" / "shd_train.h5", [(times, units, 1)] + SHD_TRAIN)
        return lambda: load_dataset("shd", data_dir=tmp)

    return build


def gesture_with(relpath, events=None, raw=None):
    def build(tmp, mp):
        base = tmp / "DVSGesture" / "ibmGestureTrain"
        ok = base / "user01_led"
        ok.mkdir(parents=True)
        np.save(ok / "2.npy", np.asarray([[1, 1, 1, 1000.0], [2, 1, 0, 2000.0]]))
        p = base / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        if raw is not None:
            p.write_bytes(raw)
        else:
            np.save(p, np.asarray(events, np.float64).reshape(-1, 4))
        return lambda: load_dataset("dvsgesture", data_dir=tmp)

    return build


def call(fn, *args, **kwargs):
    return lambda tmp, mp: lambda: fn(*args, **kwargs)


def with_tmp(fn):
    """fn(tmp) -> the call (for arguments that are paths in tmp)."""
    return lambda tmp, mp: lambda: fn(tmp)


def file_at(tmp, name="a-file"):
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_text("not a folder")
    return tmp / name


def default_cache_read_only(tmp, mp):
    make_nmnist(tmp)
    unwritable(mp, tmp / "cache")
    return lambda: load_dataset("nmnist", data_dir=tmp)


def cache_dir_read_only(tmp, mp):
    make_nmnist(tmp)
    unwritable(mp, tmp / "ro")
    return lambda: load_dataset("nmnist", data_dir=tmp, cache_dir=tmp / "ro")


def corrupt_entry_in_read_only_cache(tmp, mp):
    make_nmnist(tmp)
    entry = load_dataset("nmnist", data_dir=tmp).entry
    (entry / "manifest.json").write_text("[]")

    def replace(*args):
        raise OSError(errno.EROFS, "Read-only file system", str(args[0]))

    mp.setattr(os, "replace", replace)
    return lambda: load_dataset("nmnist", data_dir=tmp)


def cached_frames_manifest(text):
    def build(tmp, mp):
        make_nmnist(tmp)
        entry = load_dataset("nmnist", data_dir=tmp).entry
        (entry / "manifest.json").write_text(text)
        return lambda: CachedFrames(entry)

    return build


def cached_index(index):
    def build(tmp, mp):
        make_nmnist(tmp)
        ds = load_dataset("nmnist", data_dir=tmp)
        return lambda: ds[index]

    return build


def build_yielding(samples, info=None):
    return lambda tmp, mp: (
        lambda: open_or_build(
            tmp / "c", {"dataset": "x", "split": "train"}, (2,), lambda: (iter(samples), len(samples)), info=info
        )
    )


NAN = float("nan")
ROWS = [
    # --- registry: load_dataset / dataset_info arguments
    ("unknown-name", call(load_dataset, "mnist"), ValueError, "unknown dataset 'mnist'"),
    ("name-not-str", call(load_dataset, ["nmnist"]), TypeError, "dataset name must be a str"),
    ("info-unknown-name", call(dataset_info, "cifar"), ValueError, "unknown dataset 'cifar'"),
    ("info-name-none", call(dataset_info, None), TypeError, "dataset name must be a str"),
    ("bad-split", call(load_dataset, "nmnist", "valid"), ValueError, "no split 'valid'"),
    ("split-none", call(load_dataset, "shd", None), ValueError, "no split None"),
    ("unknown-option", call(load_dataset, "nmnist", fold_labels=True), TypeError, "no option(s) fold_labels"),
    ("time-steps-zero", call(dataset_info, "nmnist", time_steps=0), ValueError, "time_steps must be >= 1"),
    ("time-steps-float", call(load_dataset, "nmnist", time_steps=2.5), TypeError, "time_steps must be an int"),
    ("time-steps-str", call(dataset_info, "shd", time_steps="100"), TypeError, "time_steps must be an int"),
    ("time-steps-bool", call(dataset_info, "shd", time_steps=True), TypeError, "time_steps must be an int"),
    ("fold-labels-str", call(dataset_info, "shd", fold_labels="no"), TypeError, "fold_labels must be True or False"),
    ("denoise-nan", call(load_dataset, "nmnist", denoise_us=NAN), TypeError, "denoise_us must be a finite number"),
    ("denoise-negative", call(load_dataset, "dvsgesture", denoise_us=-1), ValueError, "denoise_us must be >= 0"),
    ("window-zero", call(load_dataset, "nmnist", time_window_us=0), ValueError, "time_window_us must be > 0"),
    ("window-inf", call(dataset_info, "saccade-digits", time_window_us=math.inf), TypeError, "time_window_us"),
    ("seed-negative", call(load_dataset, "randman", seed=-1), ValueError, "seed must be >= 0"),
    ("seed-float", call(load_dataset, "randman", seed=1.5), TypeError, "seed must be an int"),
    ("download-str", call(load_dataset, "nmnist", download="no"), TypeError, "download must be True or False"),
    ("cache-str", call(load_dataset, "nmnist", cache="yes"), TypeError, "cache must be True or False"),
    (
        "embedded-no-cache",
        with_tmp(lambda t: load_dataset("randman", data_dir=t, cache=False)),
        ValueError,
        "cache=True",
    ),
    ("data-dir-int", call(load_dataset, "nmnist", data_dir=5), TypeError, "data_dir must be a path"),
    ("data-dir-file", with_tmp(lambda t: load_dataset("nmnist", data_dir=file_at(t))), ValueError, "data_dir"),
    # --- cache folder
    (
        "cache-dir-file",
        with_tmp(lambda t: load_dataset("randman", data_dir=t, cache_dir=file_at(t))),
        ValueError,
        "cache_dir",
    ),
    (
        "cache-dir-under-file",
        with_tmp(lambda t: load_dataset("randman", data_dir=t, cache_dir=file_at(t) / "c")),
        ValueError,
        "a-file is a file",
    ),
    (
        "cache-dir-dataset-file",
        with_tmp(lambda t: load_dataset("randman", data_dir=t, cache_dir=file_at(t, "c/randman").parent)),
        ValueError,
        "randman is a file",
    ),
    ("cache-dir-int", call(load_dataset, "randman", cache_dir=3.5), TypeError, "cache_dir must be a path"),
    ("default-cache-read-only", default_cache_read_only, PermissionError, "--cache-dir"),
    ("cache-dir-read-only", cache_dir_read_only, PermissionError, "cache_dir"),
    ("corrupt-entry-read-only", corrupt_entry_in_read_only_cache, PermissionError, "--cache-dir"),
    ("cached-manifest-list", cached_frames_manifest("[1, 2]"), CorruptDataError, "manifest.json"),
    ("cached-manifest-keys", cached_frames_manifest('{"num_samples": "3"}'), CorruptDataError, "manifest.json"),
    ("cached-missing", with_tmp(lambda t: CachedFrames(t / "nothing")), FileNotFoundError, "nothing"),
    ("cached-index-float", cached_index(1.5), TypeError, "index must be an integer"),
    ("cached-index-range", cached_index(3), IndexError, "index 3 out of range"),
    ("build-empty", build_yielding([]), ValueError, "no samples"),
    (
        "build-label-range",
        build_yielding([(np.ones(2), 0), (np.ones(2), 12)], dataset_info("nmnist")),
        ValueError,
        "label 12, outside 0..9",
    ),
    # --- N-MNIST files
    (
        "nmnist-missing",
        with_tmp(lambda t: load_dataset("nmnist", data_dir=t)),
        FileNotFoundError,
        "NMNIST/Train/<digit",
    ),
    ("nmnist-stray-folder", nmnist_with("foo", folder=True), ValueError, "Train/foo"),
    ("nmnist-folder-10", nmnist_with("10/00000.bin", bytes([1, 1, 0, 0, 5])), ValueError, "Train/10"),
    ("nmnist-stray-file", nmnist_with("3/notes.txt", b"x"), ValueError, "notes.txt"),
    ("nmnist-file-in-split", nmnist_with("labels.csv", b"x"), ValueError, "labels.csv"),
    ("nmnist-appledouble", nmnist_with("3/._00001.bin", b"\0" * 10), ValueError, "._00001.bin"),
    ("nmnist-nested", nmnist_with("3/sub", folder=True), ValueError, "3/sub"),
    ("nmnist-truncated", nmnist_with("3/00009.bin", b"\x01" * 12), CorruptDataError, "00009.bin"),
    ("nmnist-empty-file", nmnist_with("3/00009.bin", b""), CorruptDataError, "00009.bin"),
    ("nmnist-only-overflow", nmnist_events([OVERFLOW, OVERFLOW]), CorruptDataError, "00009.bin: no events"),
    (
        "nmnist-outside-sensor",
        nmnist_events([(40, 1, 1, 100), (1, 1, 1, 200)]),
        CorruptDataError,
        "00009.bin: event field 'x' outside the sensor range [0, 34) in 1 of 2",
    ),
    (
        "nmnist-isolated-outside",
        nmnist_events([(1, 1, 1, 100), (2, 1, 1, 200), (1, 50, 0, 90000)]),
        CorruptDataError,
        "'y' outside the sensor range [0, 34) in 1 of 3",
    ),
    ("nmnist-garbage", nmnist_with("3/00009.bin", bytes(range(250))), CorruptDataError, "00009.bin"),
    ("nmnist-backwards", nmnist_events([(1, 1, 1, 5000), (2, 1, 1, 100)]), CorruptDataError, "go backwards"),
    ("nmnist-no-cache-outside", nmnist_events([(40, 1, 1, 100)], cache=False), CorruptDataError, "00009.bin"),
    # --- SHD / SSC files
    ("shd-missing", with_tmp(lambda t: load_dataset("shd", data_dir=t)), FileNotFoundError, "SHD/shd_train.h5"),
    (
        "shd-folder",
        with_tmp(lambda t: load_dataset("shd", data_dir=(t / "SHD" / "shd_train.h5").mkdir(parents=True) or t)),
        ValueError,
        "shd_train.h5 is a folder",
    ),
    (
        "shd-label-25",
        shd_with([([0.1], [1], 3), ([0.2], [2], 25)]),
        CorruptDataError,
        "shd_train.h5: 1 of 2 labels outside 0..19",
    ),
    ("shd-label-25-unfolded", shd_with([([0.1], [1], 25)], fold_labels=False), CorruptDataError, "outside 0..19"),
    ("shd-label-negative", shd_with([([0.1], [1], -1)], labels_dtype=np.int16), CorruptDataError, "outside 0..19"),
    ("shd-label-float", shd_with([([0.1], [1], 2.5)], labels_dtype=np.float32), CorruptDataError, "integer"),
    ("shd-no-samples", shd_with([]), CorruptDataError, "shd_train.h5: no samples"),
    ("shd-nan-time", shd_spikes([0.1, NAN], [1, 2]), CorruptDataError, "shd_train.h5: sample 0: 1 of 2 spike times"),
    ("shd-inf-time", shd_spikes([math.inf, 0.1], [1, 2]), CorruptDataError, "NaN or Inf"),
    ("shd-negative-time", shd_spikes([-0.5, 0.1], [1, 2]), CorruptDataError, "negative"),
    ("shd-unit-700", shd_spikes([0.1, 0.2], [1, 700]), CorruptDataError, "1 of 2 spike units outside [0, 700)"),
    ("shd-not-hdf5", shd_raw(b"\x1f\x8b gzip, not gunzipped"), CorruptDataError, "shd_train.h5: not a readable HDF5"),
    ("ssc-label-35", shd_with([([0.1], [1], 35)], name="ssc", n_classes=35), CorruptDataError, "outside 0..34"),
    # --- DVS Gesture files
    ("gesture-stray-folder", gesture_with("misc/1.npy", [[1, 1, 1, 1.0]]), ValueError, "misc"),
    ("gesture-label-11", gesture_with("user02_led/11.npy", [[1, 1, 1, 1.0]]), ValueError, "11.npy"),
    ("gesture-name", gesture_with("user02_led/x.npy", [[1, 1, 1, 1.0]]), ValueError, "x.npy"),
    (
        "gesture-outside",
        gesture_with("user02_led/1.npy", [[200, 1, 1, 1.0], [1, 1, 0, 2.0]]),
        CorruptDataError,
        "1.npy: event field 'x' outside the sensor range [0, 128) in 1 of 2",
    ),
    (
        "gesture-nan-time",
        gesture_with("user02_led/1.npy", [[1, 1, 1, NAN], [1, 2, 0, 2.0]]),
        CorruptDataError,
        "1.npy: 1 of 2 event times are negative, NaN or Inf",
    ),
    ("gesture-empty", gesture_with("user02_led/1.npy", []), CorruptDataError, "1.npy: no events"),
    ("gesture-garbage", gesture_with("user02_led/1.npy", raw=b"garbage"), CorruptDataError, "1.npy"),
    # --- event -> frame functions and embedded generators
    (
        "check-events-nan-float-time",
        call(check_events, FLOAT_TIMES, (34, 34, 2)),
        ValueError,
        "1 of 3 event times are negative, NaN or Inf",
    ),
    ("denoise-list", call(denoise, [1, 2], 10), TypeError, "events must be a 1-D numpy structured array"),
    ("denoise-filter-nan", call(denoise, EVENTS, NAN), ValueError, "filter_time"),
    ("frames-plain-array", call(time_window_frames, np.zeros(3), (34, 34, 2), 1000, 25), TypeError, "events"),
    ("frames-sensor", call(time_window_frames, EVENTS, (34, 34), 1000, 25), ValueError, "sensor_size"),
    ("frames-window", call(time_window_frames, EVENTS, (34, 34, 2), 0, 25), ValueError, "time_window"),
    ("frames-steps", call(time_window_frames, EVENTS, (34, 34, 2), 1000, 2.5), TypeError, "time_steps"),
    ("bins-zero", call(time_bin_frames, EVENTS, (34, 34, 2), 0), ValueError, "n_time_bins"),
    (
        "norm-bins-nan",
        call(normalized_time_bins, np.array([NAN, 1.0]), np.array([1, 2]), 100, 700),
        ValueError,
        "1 of 2 spike times are negative, NaN or Inf",
    ),
    ("norm-bins-unit", call(normalized_time_bins, np.array([1.0]), np.array([700]), 100, 700), ValueError, "units"),
    (
        "norm-bins-lengths",
        call(normalized_time_bins, np.array([1.0]), np.array([1, 2]), 100, 700),
        ValueError,
        "1 spike times but 2 units",
    ),
    ("norm-bins-zero", call(normalized_time_bins, np.array([1.0]), np.array([1]), 0, 700), ValueError, "n_bins"),
    ("randman-no-samples", call(randman_events, 0, 0, 0), ValueError, "samples_per_class must be >= 1"),
    ("randman-seed", call(randman_frames, -1, 2, 0), ValueError, "seed must be >= 0"),
    ("randman-steps", call(randman_frames, 0, 2, 0, time_steps=0), ValueError, "time_steps must be >= 1"),
    ("saccade-shape", call(saccade_digit_events, np.zeros((2, 3)), 0), ValueError, "images must be"),
]


@pytest.mark.parametrize("build, exc, fragment", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_data(tmp_path, monkeypatch, build, exc, fragment):
    monkeypatch.setenv("SPARSESPIKE_DATA", str(tmp_path / "data"))  # the default data folder, inside tmp_path
    monkeypatch.chdir(tmp_path)
    run = build(tmp_path, monkeypatch)
    with pytest.raises(exc) as info:
        run()
    assert fragment in str(info.value), str(info.value)
    assert "\n" not in str(info.value) or exc is FileNotFoundError  # one line (missing_files: key fact first)
    # Nothing half-built is left behind.
    assert not list(tmp_path.rglob("*.tmp-*"))


# Wrong-shaped manifests (valid JSON) are rebuilt, not a crash.
MANIFESTS = [
    "[]",
    "null",
    "3",
    "{}",
    '{"num_samples": 3}',
    '{"files": [], "num_samples": 3, "frame_shape": [25]}',
    None,
]


@pytest.mark.parametrize(
    "manifest", MANIFESTS, ids=["list", "null", "number", "empty", "partial", "types", "wrong-files"]
)
def test_wrong_shaped_manifest_is_rebuilt(tmp_path, manifest):
    make_nmnist(tmp_path)
    entry = load_dataset("nmnist", data_dir=tmp_path).entry
    path = entry / "manifest.json"
    if manifest is None:  # right keys, a file entry of the wrong type
        m = json.loads(path.read_text())
        m["files"]["coords"] = "abc"
        manifest = json.dumps(m)
    path.write_text(manifest)
    again = load_dataset("nmnist", data_dir=tmp_path)
    assert again.entry == entry and len(again) == 3 and again.manifest["num_samples"] == 3


def test_hidden_clutter_is_ignored(tmp_path):
    make_nmnist(tmp_path)
    (tmp_path / "NMNIST" / "Train" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "NMNIST" / "Train" / "3" / ".DS_Store").write_bytes(b"x")
    assert len(load_dataset("nmnist", data_dir=tmp_path)) == 3


def test_read_only_data_with_a_cache_elsewhere(tmp_path, monkeypatch):
    make_nmnist(tmp_path)
    unwritable(monkeypatch, tmp_path / "cache")
    with pytest.raises(PermissionError) as e:
        load_dataset("nmnist", data_dir=tmp_path)
    assert str(tmp_path / "cache") in str(e.value) and "cache_dir=" in str(e.value)
    assert len(load_dataset("nmnist", data_dir=tmp_path, cache_dir=tmp_path / "elsewhere")) == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder_for_real(tmp_path):
    make_nmnist(tmp_path)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="--cache-dir"):
            load_dataset("nmnist", data_dir=tmp_path)
    finally:
        tmp_path.chmod(0o755)
