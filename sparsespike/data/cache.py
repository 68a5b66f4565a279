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
(size and digest); a mismatch deletes the entry and it is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["CachedFrames", "cache_key_digest", "open_or_build"]

FORMAT_VERSION = 1
_ARRAYS = ("coords", "values", "offsets", "labels")


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
    tmp: Path, key: dict, shape: tuple[int, ...], samples: Iterable, total: int | None, desc: str
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
        coords.append(nz)
        values.append(vals)
        lengths.append(len(nz))
        labels.append(int(label))
        if len(vals):
            max_value = max(max_value, int(vals.max()))
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


def _validate(entry: Path, key: dict, shape: tuple[int, ...]) -> str | None:
    """None when the entry is complete and intact, else the reason it is not."""
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        return f"unreadable manifest ({e})"
    if manifest.get("format_version") != FORMAT_VERSION:
        return "other format version"
    if json.loads(json.dumps(key, default=str)) != manifest.get("key"):
        return "key differs from the manifest"
    if tuple(manifest.get("frame_shape", ())) != shape:
        return "frame shape differs"
    for name in _ARRAYS:
        meta = manifest.get("files", {}).get(name)
        path = entry / f"{name}.npy"
        if meta is None or not path.is_file():
            return f"missing {name}.npy"
        if path.stat().st_size != meta["bytes"]:
            return f"{name}.npy has {path.stat().st_size} bytes, manifest says {meta['bytes']}"
        if _file_digest(path) != meta["blake2b"]:
            return f"{name}.npy digest differs from the manifest"
    n = manifest["num_samples"]
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


def open_or_build(
    cache_dir: str | os.PathLike,
    key: dict,
    frame_shape: tuple[int, ...],
    build: Callable[[], tuple[Iterable, int | None]],
    info=None,
) -> "CachedFrames":
    """Open the entry for `key`, building it from `build()` -> (iterable of (frame, label), count)
    when it is missing, incomplete or corrupt."""
    frame_shape = tuple(int(s) for s in frame_shape)
    digest = cache_key_digest(key)
    entry = Path(cache_dir) / str(key["dataset"]) / f"{key['split']}-{digest}"
    if entry.exists():
        reason = _validate(entry, key, frame_shape)
        if reason is None:
            return CachedFrames(entry, info)
        # Corrupt or partial: move it aside (atomic) so no reader keeps using it, then rebuild.
        trash = entry.with_name(f"{entry.name}.corrupt-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
        except FileNotFoundError:
            pass  # another process removed or replaced it meanwhile
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        samples, total = build()
        _write_entry(tmp, key, frame_shape, samples, total, f"{key['dataset']}/{key['split']} -> cache")
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
        manifest = json.loads((self.entry / "manifest.json").read_text())
        self.manifest = manifest
        self.frame_shape = tuple(manifest["frame_shape"])
        self.info = info
        self.labels = np.load(self.entry / "labels.npy")
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
        n = len(self.labels)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index %= n
        coords, values, offsets = self._maps or self._open()
        lo, hi = offsets[index], offsets[index + 1]
        flat = np.zeros(int(np.prod(self.frame_shape)), dtype=np.float32)
        flat[coords[lo:hi]] = values[lo:hi]
        return torch.from_numpy(flat.reshape(self.frame_shape)), int(self.labels[index])

    def __repr__(self) -> str:
        name = self.info.name if self.info is not None else self.entry.parent.name
        return f"CachedFrames({name!r}, n={len(self)}, frame_shape={self.frame_shape}, entry={str(self.entry)!r})"
