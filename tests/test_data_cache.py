"""The frame cache: later loads never decode events, parameters key the entry, corruption rebuilds."""

import json
import os
import pathlib
import pickle
import time

import numpy as np
import pytest
import torch
from network_guard import no_network  # noqa: F401  (autouse)
from test_data_tonic import make_nmnist

from sparsespike.data import cache, load_dataset, tonic_sets


@pytest.fixture
def decodes(monkeypatch):
    """Counts calls of the event decoder (EventFrames.frames)."""
    calls = []
    original = tonic_sets.EventFrames.frames

    def counting(self, index):
        calls.append(index)
        return original(self, index)

    monkeypatch.setattr(tonic_sets.EventFrames, "frames", counting)
    return calls


def items(ds):
    return [(x.clone(), y) for x, y in (ds[i] for i in range(len(ds)))]


def test_second_load_reads_cache(tmp_path, decodes):
    make_nmnist(tmp_path)
    first = load_dataset("nmnist", data_dir=tmp_path)
    assert len(decodes) == 3
    second = load_dataset("nmnist", data_dir=tmp_path)
    x = [second[i] for i in range(3)]
    assert len(decodes) == 3  # nothing decoded again
    assert second.entry == first.entry and second.entry.parent.parent == tmp_path / "cache"
    direct = load_dataset("nmnist", data_dir=tmp_path, cache=False)
    for (a, ya), (b, yb) in zip(x, items(direct)):
        assert ya == yb and torch.equal(a, b)
    manifest = second.manifest
    assert manifest["key"]["options"] == {"time_steps": 25, "time_window_us": 1000, "denoise_us": 10000}
    assert manifest["num_samples"] == 3


def test_parameters_key_the_entry(tmp_path, decodes):
    make_nmnist(tmp_path)
    a = load_dataset("nmnist", data_dir=tmp_path)
    b = load_dataset("nmnist", data_dir=tmp_path, time_window_us=2000)
    c = load_dataset("nmnist", "test", data_dir=tmp_path)
    d = load_dataset("nmnist", data_dir=tmp_path, cache_dir=tmp_path / "elsewhere")
    assert len({a.entry, b.entry, c.entry, d.entry}) == 4
    assert len(decodes) == 3 + 3 + 1 + 3
    assert not torch.equal(a[0][0], b[0][0])
    # Editing the source files (a new sample) invalidates the entry.
    (tmp_path / "NMNIST" / "Train" / "3" / "00009.bin").write_bytes(bytes([1, 1, 0, 0, 5]))
    e = load_dataset("nmnist", data_dir=tmp_path)
    assert len(e) == 4 and e.entry != a.entry


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "missing"])
def test_corrupt_cache_is_rebuilt(tmp_path, decodes, damage):
    make_nmnist(tmp_path)
    good = load_dataset("nmnist", data_dir=tmp_path)
    expected = items(good)
    entry = good.entry
    del good
    if damage == "truncate":
        p = entry / "coords.npy"
        p.write_bytes(p.read_bytes()[:-3])
    elif damage == "flip":
        p = entry / "values.npy"
        raw = bytearray(p.read_bytes())
        raw[-1] ^= 0xFF
        p.write_bytes(bytes(raw))
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{")
    else:
        (entry / "offsets.npy").unlink()
    again = load_dataset("nmnist", data_dir=tmp_path)
    assert len(decodes) == 6  # rebuilt
    assert (
        again.entry == entry and not list(entry.parent.glob("*.tmp-*")) and not list(entry.parent.glob("*.corrupt-*"))
    )
    for (a, ya), (b, yb) in zip(expected, items(again)):
        assert ya == yb and torch.equal(a, b)


def test_cache_is_compact_and_worker_safe(tmp_path):
    make_nmnist(tmp_path)
    ds = load_dataset("nmnist", data_dir=tmp_path)
    coords = np.load(ds.entry / "coords.npy", mmap_mode="r")
    assert coords.dtype == np.uint16 and np.load(ds.entry / "values.npy").dtype == np.uint8
    ds[0]  # opens the memory maps
    clone = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives
    assert clone._maps is None and torch.equal(clone[2][0], ds[2][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    xs, ys = zip(*loader)
    assert torch.cat(ys).tolist() == [0, 3, 7] and torch.cat(xs).shape == (3, 25, 2, 34, 34)
    with pytest.raises(IndexError):
        ds[3]


def test_same_size_replacement_invalidates(tmp_path, decodes):
    make_nmnist(tmp_path)
    a = load_dataset("nmnist", data_dir=tmp_path)
    f = tmp_path / "NMNIST" / "Train" / "7" / "00002.bin"
    raw = bytearray(f.read_bytes())
    raw[0] = 4  # another x, the same size
    st = f.stat()
    f.write_bytes(bytes(raw))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))  # coarse clocks: force a new mtime
    b = load_dataset("nmnist", data_dir=tmp_path)
    assert b.entry != a.entry and len(decodes) == 6


def test_litter_of_killed_processes_is_cleaned(tmp_path):
    make_nmnist(tmp_path)
    entry = load_dataset("nmnist", data_dir=tmp_path).entry
    folder = entry.parent
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    old = time.time() - 2 * 24 * 3600
    made = {
        f"train-0123456789abcdef.tmp-{cache._HOST}-{dead}-0badc0de": False,  # this host, pid gone, old
        f"train-0123456789abcdef.tmp-{dead}-0badc0de": False,  # older naming, pid gone, old
        # this host, no such pid, but fresh: maybe another container's live writer
        f"train-0123456789abcdef.tmp-{cache._HOST}-{dead}-6badc0de": True,
        f"train-0123456789abcdef.tmp-{cache._HOST}-{os.getpid()}-1badc0de": True,  # a live writer
        f"train-0123456789abcdef.tmp-otherhost-{dead}-2badc0de": True,  # other host, fresh
        f"train-0123456789abcdef.tmp-otherhost-{dead}-3badc0de": False,  # other host, 2 days old
        "train-0123456789abcdef.corrupt-4badc0de": False,
        "test-fedcba9876543210": False,  # an entry without a manifest
        "notes": True,  # not ours
    }
    for name in made:
        (folder / name).mkdir()
        (folder / name / "coords.npy").write_bytes(b"x")
    (folder / "train-0123456789abcdef.corrupt-5badc0de").write_bytes(b"x")  # a moved-aside file
    for name in (f"otherhost-{dead}-3badc0de", f"{cache._HOST}-{dead}-0badc0de", f"{dead}-0badc0de"):
        os.utime(folder / f"train-0123456789abcdef.tmp-{name}", (old, old))
    load_dataset("nmnist", data_dir=tmp_path)
    left = {p.name for p in folder.iterdir()}
    assert left == {entry.name} | {name for name, keep in made.items() if keep}


def test_old_format_entries_are_rebuilt(tmp_path, decodes):
    make_nmnist(tmp_path)
    entry = load_dataset("nmnist", data_dir=tmp_path).entry
    m = json.loads((entry / "manifest.json").read_text())
    m["format_version"] = 1  # built before labels and events were checked
    (entry / "manifest.json").write_text(json.dumps(m))
    assert load_dataset("nmnist", data_dir=tmp_path).manifest["format_version"] == cache.FORMAT_VERSION
    assert len(decodes) == 6


def test_default_data_folder_is_never_the_working_directory(tmp_path, monkeypatch):
    from sparsespike.data import default_data_dir

    monkeypatch.delenv("SPARSESPIKE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "sparsespike"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == pathlib.Path.home() / ".cache" / "sparsespike"
    monkeypatch.setenv("SPARSESPIKE_DATA", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
