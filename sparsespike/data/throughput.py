"""Loading throughput: a DataLoader epoch decoding events (tonic read + transform) vs the cache.

`python -m sparsespike.data.throughput [--samples N]` writes N-MNIST-format .bin files (saccade
digit recordings, ~5,600 events each like N-MNIST) and an SHD-format .h5 (random spikes, ~8,000
per sample) into a temporary folder and prints items/s of one epoch for each path as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["epoch_items_per_second"]


def epoch_items_per_second(dataset, batch_size: int = 32, num_workers: int = 0) -> float:
    """Items per second of one full DataLoader epoch over `dataset` (shuffled, default collate)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers)
    start = time.perf_counter()
    n = sum(len(labels) for _, labels in loader)
    return n / (time.perf_counter() - start)


def _write_nmnist(root: Path, n: int) -> None:
    from sklearn.datasets import load_digits

    from .saccade_digits import saccade_digit_events

    digits = load_digits()
    for start in range(0, n, 256):
        idx = np.arange(start, min(n, start + 256)) % len(digits.target)
        for i, ev in zip(range(start, start + len(idx)), saccade_digit_events(digits.images[idx], seed=start)):
            rec = np.empty((len(ev), 5), np.uint8)
            t = ev["t"]
            rec[:, 0], rec[:, 1] = ev["x"], ev["y"]
            rec[:, 2] = (ev["p"] << 7) | ((t >> 16) & 0x7F)
            rec[:, 3], rec[:, 4] = (t >> 8) & 0xFF, t & 0xFF
            path = root / "NMNIST" / "Train" / str(digits.target[idx[i - start]]) / f"{i:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rec.tobytes())


def _write_shd(root: Path, n: int, spikes: int = 8000) -> None:
    import h5py

    rng = np.random.default_rng(0)
    path = root / "SHD" / "shd_train.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        u = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            t[i] = np.sort(rng.uniform(0, 1.0, spikes)).astype(np.float16)
            u[i] = rng.integers(0, 700, spikes).astype(np.uint16)
        f["labels"] = rng.integers(0, 20, n).astype(np.uint16)
        f["extra/keys"] = np.asarray([b"k"] * 20)
        f["extra/speaker"] = np.zeros(n, np.uint16)


def main(argv=None) -> dict:
    from .registry import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    report = {}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _write_nmnist(root, args.samples)
        _write_shd(root, args.samples)
        for name in ("nmnist", "shd"):
            decoding = load_dataset(name, data_dir=root, cache=False)
            start = time.perf_counter()
            cached = load_dataset(name, data_dir=root)
            build = time.perf_counter() - start
            report[name] = {
                "samples": len(cached),
                "decode_items_per_s": round(epoch_items_per_second(decoding, num_workers=args.workers), 1),
                "cache_build_s": round(build, 2),
                "cached_items_per_s": round(epoch_items_per_second(cached, num_workers=args.workers), 1),
                "cache_bytes": sum(p.stat().st_size for p in cached.entry.iterdir()),
            }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
