"""Atomic checkpoints: a kill at any moment leaves a loadable file; corrupt files fail clearly."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from sparsespike.training import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "history": [{"acc": 1.5}]}
    path = save_checkpoint(state, tmp_path / "sub" / "last.pt")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["history"] == [{"acc": 1.5}]
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_failure_during_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_sigkill_mid_write_never_leaves_a_broken_checkpoint(tmp_path):
    # A child rewrites a 16 MB checkpoint in a loop; it is killed with SIGKILL at several moments.
    # Every time, the file must load and hold one complete state (its payload matches its counter).
    path = tmp_path / "last.pt"
    script = textwrap.dedent(f"""
        import torch
        from sparsespike.training import save_checkpoint
        i = 0
        while True:
            save_checkpoint({{"i": i, "w": torch.full((4_000_000,), float(i))}}, {str(path)!r})
            print(i, flush=True)
            i += 1
    """)
    for delay in (0.05, 0.4, 0.9):
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        child.stdout.readline()  # at least one checkpoint exists
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        state = load_checkpoint(path)
        assert torch.all(state["w"] == float(state["i"]))


def test_truncated_and_foreign_files_raise_naming_the_file(tmp_path):
    path = save_checkpoint({"w": torch.ones(1000)}, tmp_path / "ok.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a sparsespike checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_write_gives_the_mode_of_a_normal_open(tmp_path):
    import os
    import stat

    from sparsespike._atomic import atomic_write

    atomic_write(tmp_path / "a.bin", b"x")
    with open(tmp_path / "b.bin", "wb") as f:
        f.write(b"x")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "b.bin")


def test_partial_writes_of_killed_processes_are_removed(tmp_path):
    # a SIGKILL between mkstemp and the rename leaves ".last.pt.<random>.tmp" beside the run's files
    from sparsespike._atomic import remove_partial_writes

    for name in (".last.pt.ab12cd34.tmp", ".metrics.jsonl.k9_x0zz1.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    kept = ["last.pt", "notes.tmp", ".hidden", ".last.pt.short.tmp"]
    for name in kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".dir.ab12cd34.tmp").mkdir()  # only files are atomic_write's
    removed = remove_partial_writes(tmp_path)
    assert sorted(p.name for p in removed) == [".last.pt.ab12cd34.tmp", ".metrics.jsonl.k9_x0zz1.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, ".dir.ab12cd34.tmp"])
