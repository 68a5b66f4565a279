"""Disk cache of converted frames: built once, memory-mapped on every later epoch.

Layout of one entry, `<cache_dir>/<dataset>/<split>-<hash>/` where hash is a digest of the key
(dataset, split, transform parameters, source-file fingerprint, format version):

- `coords.npy`  flat index of every non-zero frame entry, sample after sample (smallest uint dtype)
- `values.npy`  the entry's value (a count; uint8/16/32 as the maximum needs)
- `offsets.npy` int64 [n + 1]: sample i owns coords[offsets[i]:offsets[i + 1]]
- `labels.npy`  int64 [n]
- `manifest.json` the key, shapes, dtypes and a blake2b digest of each file

Frames are very sparse (N-MNIST: ~1 % of entries, SHD: a few %), so this is ~30-100x smaller than
dense float32 frames. An entry is built in a temporary directory and renamed into place (atomic on
POSIX): a reader never sees a half-written entry, and concurrent builders (DDP ranks) each produce
a complete entry, the first rename winning. On open every file is checked against the manifest
(size and digest); a mismatch, or a manifest of the wrong shape, deletes the entry and it is rebuilt.

Litter of killed processes is removed whenever a dataset's cache folder is opened:
`*.corrupt-*` (entries moved aside, pending deletion: nobody reads them), entry folders without a
manifest (entries only appear complete, by rename), and `*.tmp-<host>-<pid>-*` build folders
whose process is gone: same host, no such pid and untouched for an hour (another container may
share the host name with pids of its own), or another host (a shared file system) and untouched
for a day. A live writer's folder is never touched.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import CorruptDataError, checked_index

__all__ = ["CachedFrames", "cache_key_digest", "open_or_build"]

# 2: entries are built only from checked data (labels in range, events inside the sensor): entries
# of version 1 may hold silently folded labels, so they are rebuilt.
FORMAT_VERSION = 2
_ARRAYS = ("coords", "values", "offsets", "labels")
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
_TMP = re.compile(r".+\.tmp-(?:(?P<host>[A-Za-z0-9_]+)-)?(?P<pid>[0-9]+)-[0-9a-f]{8}")
_ENTRY = re.compile(r"[A-Za-z0-9_]+-[0-9a-f]{16}")
_FOREIGN_TMP_AGE_S = 24 * 3600
_DEAD_PID_TMP_AGE_S = 3600


def cache_key_digest(key: dict) -> str:
    """16 hex digits of sha256 over the key's canonical JSON."""
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _uint_dtype(max_value: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def _write_entry(
    tmp: Path, key: dict, shape: tuple[int, ...], samples: Iterable, total: int | None, desc: str,
    num_classes: int | None = None,
) -> None:
    coords, values, lengths, labels = [], [], [], []
    max_value = 0
    for frame, label in tqdm(samples, total=total, desc=desc, unit="sample", leave=False):
        frame = np.asarray(frame)
        if frame.shape != shape:
            raise ValueError(f"{desc}: a sample has frame shape {frame.shape}, expected {shape}")
        flat = frame.reshape(-1)
        nz = np.flatnonzero(flat)
        vals = flat[nz]
        if len(vals) and (vals.min() < 0 or not np.all(vals == np.round(vals))):
            raise ValueError(f"{desc}: frames must hold non-negative integer counts")
        label = int(label)
        if num_classes is not None and not 0 <= label < num_classes:
            raise ValueError(f"{desc}: sample {len(labels)} has label {label}, outside 0..{num_classes - 1}")
        coords.append(nz)
        values.append(vals)
        lengths.append(len(nz))
        labels.append(label)
        if len(vals):
            max_value = max(max_value, int(vals.max()))
    if not labels:  # an empty split would "train" and report nothing
        raise ValueError(f"{desc}: no samples")
    size = int(np.prod(shape))
    arrays = {
        "coords": (np.concatenate(coords) if coords else np.zeros(0)).astype(_uint_dtype(size - 1)),
        "values": (np.concatenate(values) if values else np.zeros(0)).astype(_uint_dtype(max_value)),
        "offsets": np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64),
        "labels": np.asarray(labels, dtype=np.int64),
    }
    files = {}
    for name, arr in arrays.items():
        path = tmp / f"{name}.npy"
        np.save(path, arr)
        files[name] = {"bytes": path.stat().st_size, "blake2b": _file_digest(path)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "frame_shape": list(shape),
        "num_samples": len(labels),
        "nnz": int(arrays["offsets"][-1]),
        "files": files,
    }
    # The manifest is written last: an entry without one is incomplete by construction.
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _read_manifest(entry: Path) -> dict:
    """The manifest of `entry`, checked for shape and types; CorruptDataError naming it otherwise."""
    path = entry / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CorruptDataError(path, f"unreadable manifest ({e})") from e

    def ok(v, t):
        return isinstance(v, t) and not isinstance(v, bool)

    files = m.get("files") if isinstance(m, dict) else None
    if not (
        isinstance(m, dict) and ok(m.get("num_samples"), int) and m["num_samples"] >= 0
        and isinstance(m.get("frame_shape"), list) and all(ok(s, int) for s in m["frame_shape"])
        and isinstance(files, dict) and "key" in m
        and all(isinstance(files.get(a), dict) and ok(files[a].get("bytes"), int)
                and isinstance(files[a].get("blake2b"), str) for a in _ARRAYS)
    ):
        raise CorruptDataError(path, "manifest is not an object with num_samples, frame_shape, key and files")
    return m


def _validate(entry: Path, key: dict, shape: tuple[int, ...]) -> str | None:
    """None when the entry is complete and intact, else the reason it is not."""
    try:
        manifest = _read_manifest(entry)
    except CorruptDataError as e:
        return e.reason
    if manifest.get("format_version") != FORMAT_VERSION:
        return "other format version"
    if json.loads(json.dumps(key, default=str)) != manifest["key"]:
        return "key differs from the manifest"
    if tuple(manifest["frame_shape"]) != shape:
        return "frame shape differs"
    for name in _ARRAYS:
        meta = manifest["files"][name]
        path = entry / f"{name}.npy"
        if not path.is_file():
            return f"missing {name}.npy"
        if path.stat().st_size != meta["bytes"]:
            return f"{name}.npy has {path.stat().st_size} bytes, manifest says {meta['bytes']}"
        if _file_digest(path) != meta["blake2b"]:
            return f"{name}.npy digest differs from the manifest"
    n = manifest["num_samples"]
    if n == 0:
        return "no samples"
    try:
        offsets = np.load(entry / "offsets.npy")
        labels = np.load(entry / "labels.npy", mmap_mode="r")
        coords = np.load(entry / "coords.npy", mmap_mode="r")
    except (OSError, ValueError) as e:
        return f"unloadable arrays ({e})"
    if offsets.shape != (n + 1,) or labels.shape != (n,):
        return "offsets/labels length differs from num_samples"
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != len(coords):
        return "offsets inconsistent with coords"
    return None


def _remove(path: Path) -> None:
    """Delete a file or folder tree, whichever it is; gone already is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an odd pid): assume alive, keep its folder
    return True


def _is_litter(path: Path) -> bool:
    name = path.name
    if ".corrupt-" in name:
        return True
    m = _TMP.fullmatch(name)
    if m:
        try:
            age = time.time() - path.lstat().st_mtime
        except OSError:
            return False
        if m["host"] in (None, _HOST):  # no host: written by an older version, on this machine
            return age > _DEAD_PID_TMP_AGE_S and not _pid_alive(int(m["pid"]))
        return age > _FOREIGN_TMP_AGE_S
    return bool(_ENTRY.fullmatch(name)) and path.is_dir() and not (path / "manifest.json").exists()


def clean_litter(folder: Path) -> None:
    """Remove what killed processes left in one dataset's cache folder (rules: module docstring).
    Best effort: a read-only cache is left as it is."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return
    for path in children:
        if _is_litter(path):
            _remove(path)


def _writable_error(e: OSError, folder: Path, cache_dir: Path, default: bool) -> Exception:
    """The user-facing error for `folder` (in the cache) that cannot be created or written."""
    where = f"the default cache folder {cache_dir} (inside data_dir)" if default else f"cache_dir {cache_dir}"
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        file = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), e.filename)
        return ValueError(f"{where} cannot hold the frame cache: {file} is a file, not a folder")
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionError(f"{where} is not writable ({e.filename}): pass cache_dir=<a writable folder> "
                               "(CLI: --cache-dir) to keep the frame cache elsewhere")
    return e


def open_or_build(
    cache_dir: str | os.PathLike,
    key: dict,
    frame_shape: tuple[int, ...],
    build: Callable[[], tuple[Iterable, int | None]],
    info=None,
    default_location: bool = False,
) -> CachedFrames:
    """Open the entry for `key`, building it from `build()` -> (iterable of (frame, label), count)
    when it is missing, incomplete or corrupt.

    A cache folder that is a file raises ValueError, an unwritable one PermissionError (suggesting
    cache_dir / --cache-dir; `default_location`: it is the default inside data_dir), before
    anything is built. A build yielding no samples, or labels outside 0..info.num_classes-1,
    raises ValueError and leaves nothing behind.
    """
    frame_shape = tuple(int(s) for s in frame_shape)
    cache_dir = Path(cache_dir)
    digest = cache_key_digest(key)
    entry = cache_dir / str(key["dataset"]) / f"{key['split']}-{digest}"
    if any(p.exists() and not p.is_dir() for p in (entry.parent, *entry.parent.parents)):
        raise _writable_error(NotADirectoryError(), entry.parent, cache_dir, default_location)
    clean_litter(entry.parent)
    if entry.exists() or entry.is_symlink():
        reason = _validate(entry, key, frame_shape)
        if reason is None:
            return CachedFrames(entry, info)
        # Corrupt or partial: move it aside (atomic) so no reader keeps using it, then rebuild.
        trash = entry.with_name(f"{entry.name}.corrupt-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(entry, trash)
        except FileNotFoundError:
            pass  # another process removed or replaced it meanwhile
        except OSError as e:
            raise _writable_error(e, entry.parent, cache_dir, default_location) from e
        _remove(trash)
    tmp = entry.with_name(f"{entry.name}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise _writable_error(e, entry.parent, cache_dir, default_location) from e
    try:
        samples, total = build()
        _write_entry(tmp, key, frame_shape, samples, total, f"{key['dataset']}/{key['split']} -> cache",
                     num_classes=None if info is None else info.num_classes)
        try:
            os.rename(tmp, entry)
        except OSError:
            if _validate(entry, key, frame_shape) is not None:  # lost a race to a broken entry
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    reason = _validate(entry, key, frame_shape)
    if reason is not None:
        raise RuntimeError(f"cache entry {entry} failed validation right after building: {reason}")
    return CachedFrames(entry, info)


class CachedFrames(torch.utils.data.Dataset):
    """Items (float32 frames [T, ...], int label) read from a cache entry through memory maps.

    The maps are opened lazily, so the dataset pickles cheaply into DataLoader workers.
    """

    def __init__(self, entry: str | os.PathLike, info=None):
        self.entry = Path(entry)
        if not (self.entry / "manifest.json").is_file():
            raise FileNotFoundError(f"no cache entry at {self.entry}: manifest.json is missing")
        manifest = _read_manifest(self.entry)
        self.manifest = manifest
        self.frame_shape = tuple(manifest["frame_shape"])
        self.info = info
        path = self.entry / "labels.npy"
        try:
            self.labels = np.load(path)
        except (OSError, ValueError) as e:
            raise CorruptDataError(path, f"unloadable ({e})") from e
        n = manifest["num_samples"]
        if n == 0:  # an empty split would train on nothing and report a score
            raise CorruptDataError(self.entry / "manifest.json", "no samples")
        if self.labels.shape != (n,) or not np.issubdtype(self.labels.dtype, np.integer):
            raise CorruptDataError(path, f"labels are {self.labels.dtype} {self.labels.shape}, manifest says {n} ints")
        if info is not None and not (0 <= self.labels.min() and self.labels.max() < info.num_classes):
            raise CorruptDataError(path, f"labels outside 0..{info.num_classes - 1} of {info.name}")
        self._maps = None

    def _open(self):
        self._maps = tuple(
            np.load(self.entry / f"{name}.npy", mmap_mode="r") for name in ("coords", "values")
        ) + (np.load(self.entry / "offsets.npy"),)
        return self._maps

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_maps"] = None
        return state

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        index = checked_index(index, len(self.labels))
        coords, values, offsets = self._maps or self._open()
        lo, hi = offsets[index], offsets[index + 1]
        flat = np.zeros(int(np.prod(self.frame_shape)), dtype=np.float32)
        flat[coords[lo:hi]] = values[lo:hi]
        return torch.from_numpy(flat.reshape(self.frame_shape)), int(self.labels[index])

    def __repr__(self) -> str:
        name = self.info.name if self.info is not None else self.entry.parent.name
        return f"CachedFrames({name!r}, n={len(self)}, frame_shape={self.frame_shape}, entry={str(self.entry)!r})"
