"""N-MNIST, SHD, SSC and DVS Gesture written in their exact on-disk formats, loaded through tonic's
classes via load_dataset, with the network disabled."""

import h5py
import numpy as np
import pytest
import torch
from network_guard import no_network  # noqa: F401  (autouse)

from sparsespike.data import CorruptDataError, dataset_info, load_dataset


def write_bin(path, events):
    """N-MNIST 40-bit records: x, y, p<<7 | t[22:16], t[15:8], t[7:0]; y == 240 is an overflow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = bytearray()
    for x, y, p, t in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.write_bytes(bytes(raw))


OVERFLOW = (0, 240, 0, 0)


def make_nmnist(root, archives=True):
    """Train: digits 0, 3, 7 (one file each); Test: digit 5. Returns the expected train frames."""
    base = root / "NMNIST"
    # Digit 0: (5,5) every ms from 20.01 ms, (6,5) every ms from 21 ms, 40 ms long. The first
    # event has no neighbour yet (and t >= 10 ms): dropped; every later one has a neighbour 10 or
    # 990 us before: kept. t0 = 21000, 38 complete windows; window k holds (6,5)@21000+k ms and
    # (5,5)@21010+k ms; the first 25 are kept.
    ev0 = sorted(
        [(5, 5, 1, 20010 + k * 1000) for k in range(40)] + [(6, 5, 1, 21000 + k * 1000) for k in range(39)],
        key=lambda e: e[3],
    )
    write_bin(base / "Train" / "0" / "00000.bin", ev0)
    exp0 = np.zeros((25, 2, 34, 34), np.float32)
    exp0[:, 1, 5, 5] = exp0[:, 1, 5, 6] = 1
    # Digit 3, written out by hand.
    ev3 = [
        (10, 10, 1, 20000),  # no neighbour yet, t >= 10 ms: dropped
        (11, 10, 0, 20500),  # (10,10) 500 us before: kept, window 0 (t0 = 20500)
        (10, 11, 1, 21200),  # kept, window 0
        (10, 11, 1, 21300),  # kept, window 0: count 2
        (30, 30, 1, 22000),  # isolated: dropped
        (11, 11, 1, 23999),  # (10,11) 2.7 ms before: kept, window 3
        (11, 11, 1, 45000),  # neighbours > 10 ms ago: dropped
        (12, 11, 0, 45100),  # (11,11) just before: kept, but window 24 is incomplete: dropped
        (12, 12, 1, 80000),  # dropped
    ]
    write_bin(base / "Train" / "3" / "00001.bin", ev3)
    exp3 = np.zeros((25, 2, 34, 34), np.float32)
    exp3[0, 0, 10, 11] = 1
    exp3[0, 1, 11, 10] = 2
    exp3[3, 1, 11, 11] = 1
    # Digit 7: a timestamp-overflow record adds 2**13 us to later events; events before 10 ms
    # pass denoise when a neighbour lies inside the sample's grid (tonic's behaviour).
    ev7 = [
        (1, 1, 1, 100),
        (2, 1, 1, 200),
        OVERFLOW,
        (2, 2, 0, 1000),
        (3, 2, 0, 1500),
        (3, 3, 1, 5000),
        (20, 20, 1, 40000),
    ]
    write_bin(base / "Train" / "7" / "00002.bin", ev7)
    exp7 = np.zeros((25, 2, 34, 34), np.float32)
    # kept: t = 100, 200, 9192, 9692, 13192; t0 = 100, 13 complete windows, the last event is in
    # window 13 (incomplete): dropped.
    exp7[0, 1, 1, 1] = exp7[0, 1, 1, 2] = 1
    exp7[9, 0, 2, 2] = exp7[9, 0, 2, 3] = 1
    write_bin(base / "Test" / "5" / "00000.bin", [(4, 4, 1, 20000), (4, 5, 0, 20100), (5, 5, 1, 21500)])
    if archives:
        (base / "train.zip").write_bytes(b"")
        (base / "test.zip").write_bytes(b"")
    return [(exp0, 0), (exp3, 3), (exp7, 7)]


def test_nmnist_frames_match_hand_computed(tmp_path):
    expected = make_nmnist(tmp_path)
    ds = load_dataset("nmnist", "train", data_dir=tmp_path)
    assert len(ds) == 3 and ds.info == dataset_info("nmnist")
    for i, (frames, label) in enumerate(expected):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (25, 2, 34, 34)
        assert y == label and isinstance(y, int)
        torch.testing.assert_close(x, torch.from_numpy(frames), rtol=0, atol=0)
    test = load_dataset("nmnist", "test", data_dir=tmp_path)
    x, y = test[0]
    # (4,4) dropped; (4,5) kept in window 0; (5,5) kept but 1.4 ms after t0: window 1 incomplete.
    assert y == 5 and x.sum() == 1 and x[0, 0, 5, 4] == 1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))  # default collate
    assert batch[0].shape == (3, 25, 2, 34, 34) and batch[1].tolist() == [0, 3, 7]


def test_nmnist_without_archives_and_options(tmp_path):
    expected = make_nmnist(tmp_path, archives=False)
    ds = load_dataset("nmnist", "train", data_dir=tmp_path, cache=False, time_steps=10)
    assert ds.info.time_steps == 10
    x, y = ds[1]
    assert x.shape == (10, 2, 34, 34) and y == 3
    torch.testing.assert_close(x, torch.from_numpy(expected[1][0][:10]), rtol=0, atol=0)


def test_nmnist_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"NMNIST/Train/<digit 0-9>/<NNNNN>\.bin") as e:
        load_dataset("nmnist", "train", data_dir=tmp_path)
    assert "download=True" in str(e.value)
    make_nmnist(tmp_path)
    bad = tmp_path / "NMNIST" / "Train" / "3" / "00009.bin"
    bad.write_bytes(b"\x01" * 12)  # 2.4 events: truncated
    with pytest.raises(CorruptDataError, match="00009.bin.*multiple of 5"):
        load_dataset("nmnist", "train", data_dir=tmp_path)
    write_bin(bad, [(40, 1, 1, 100), (41, 1, 1, 200)])  # x outside the 34x34 sensor
    with pytest.raises(CorruptDataError, match="00009.bin"):
        load_dataset("nmnist", "train", data_dir=tmp_path)


def write_hsd(path, samples, n_classes=20, drop=()):
    """SHD/SSC HDF5 layout: spikes/times (vlen float16 s), spikes/units (vlen uint16), labels, extra."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        if "spikes/times" not in drop:
            t = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float16))
            for i, (times, _, _) in enumerate(samples):
                t[i] = np.asarray(times, np.float16)
        if "spikes/units" not in drop:
            u = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
            for i, (_, units, _) in enumerate(samples):
                u[i] = np.asarray(units, np.uint16)
        f["labels"] = np.asarray([s[2] for s in samples], np.uint16)
        f["extra/keys"] = np.asarray([f"class-{k}".encode() for k in range(n_classes)])
        f["extra/speaker"] = np.zeros(len(samples), np.uint16)
        f["extra/meta_info/gender"] = np.asarray([b"female"])
        f["extra/meta_info/age"] = np.asarray([30], np.uint16)
        f["extra/meta_info/body_height"] = np.asarray([170], np.uint16)
    path.with_name(path.name + ".zip").write_bytes(b"")


SHD_TRAIN = [
    ([0.0, 0.25, 0.5, 1.0], [3, 3, 10, 699], 13),
    ([0.125, 0.125, 0.5], [0, 0, 5], 7),
    ([], [], 19),
]


def test_shd_bins_labels_and_folding(tmp_path):
    write_hsd(tmp_path / "SHD" / "shd_train.h5", SHD_TRAIN)
    write_hsd(tmp_path / "SHD" / "shd_test.h5", SHD_TRAIN[:1])
    # Expected by hand: bin = int(t / t_max * 99), binary.
    e0 = np.zeros((100, 700), np.float32)
    e0[0, 3] = e0[24, 3] = e0[49, 10] = e0[99, 699] = 1
    e1 = np.zeros((100, 700), np.float32)
    e1[24, 0] = e1[99, 5] = 1
    e2 = np.zeros((100, 700), np.float32)
    folded = load_dataset("shd", "train", data_dir=tmp_path)
    assert folded.info.num_classes == 10 and len(folded) == 3
    raw = load_dataset("shd", "train", data_dir=tmp_path, fold_labels=False)
    assert raw.info.num_classes == 20
    for i, (exp, label) in enumerate([(e0, 13), (e1, 7), (e2, 19)]):
        x, y = folded[i]
        assert x.shape == (100, 700) and x.dtype == torch.float32
        torch.testing.assert_close(x, torch.from_numpy(exp), rtol=0, atol=0)
        assert y == label % 10 and raw[i][1] == label
    assert len(load_dataset("shd", "test", data_dir=tmp_path)) == 1
    with pytest.raises(ValueError, match="no split 'valid'"):
        load_dataset("shd", "valid", data_dir=tmp_path)


def test_ssc_three_splits(tmp_path):
    for split in ("train", "valid", "test"):
        write_hsd(tmp_path / "SSC" / f"ssc_{split}.h5", [([0.0, 0.5], [1, 2], 34)], n_classes=35)
    ds = load_dataset("ssc", "valid", data_dir=tmp_path)
    x, y = ds[0]
    assert ds.info.num_classes == 35 and y == 34
    assert x[0, 1] == 1 and x[99, 2] == 1 and x.sum() == 2


def test_shd_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"SHD/shd_train\.h5") as e:
        load_dataset("shd", "train", data_dir=tmp_path)
    assert "gunzip" in str(e.value) and "download=True" in str(e.value)
    path = tmp_path / "SHD" / "shd_train.h5"
    path.parent.mkdir()
    path.write_bytes(b"\x1f\x8b not an hdf5 file")
    with pytest.raises(CorruptDataError, match="shd_train.h5.*HDF5"):
        load_dataset("shd", "train", data_dir=tmp_path)
    write_hsd(path, SHD_TRAIN, drop=("spikes/units",))
    with pytest.raises(CorruptDataError, match="shd_train.h5.*spikes/units"):
        load_dataset("shd", "train", data_dir=tmp_path)


def test_dvsgesture_downsampled_bins(tmp_path):
    import tonic.transforms as T

    rng = np.random.default_rng(0)
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_fluorescent"
    folder.mkdir(parents=True)
    n = 3000
    ev = np.stack(
        [rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 6000, n))],
        axis=1,
    ).astype(np.float64)  # x, y, p, t (ms)
    np.save(folder / "4.npy", ev)
    ds = load_dataset("dvsgesture", "train", data_dir=tmp_path)
    x, y = ds[0]
    assert y == 4 and x.shape == (25, 2, 34, 34)
    # Independent path: tonic's Denoise on the 128x128 events, then pooled, then tonic's ToFrame.
    s = np.zeros(n, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    s["x"], s["y"], s["p"], s["t"] = ev[:, 0], ev[:, 1], ev[:, 2], ev[:, 3] * 1000
    s = T.Denoise(filter_time=10000)(s)
    s["x"] = s["x"] * 34 // 128
    s["y"] = s["y"] * 34 // 128
    expected = T.ToFrame(sensor_size=(34, 34, 2), n_time_bins=25)(s)
    torch.testing.assert_close(x, torch.from_numpy(expected.astype(np.float32)), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="ibmGestureTest"):
        load_dataset("dvsgesture", "test", data_dir=tmp_path)


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*nmnist.*saccade-digits.*randman"):
        dataset_info("mnist")
    with pytest.raises(TypeError, match="fold_labels"):
        dataset_info("nmnist", fold_labels=True)
    with pytest.raises(ValueError, match="time_steps"):
        dataset_info("shd", time_steps=0)
