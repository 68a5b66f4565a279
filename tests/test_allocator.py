"""sparsespike._allocator: glibc keeps freed activation memory for reuse (measured as page
faults), SPARSESPIKE_MALLOC=system leaves glibc alone, a bad value is a clear error."""

import os
import platform
import subprocess
import sys

import pytest

# the minor page faults of each of 10 forwards of a study-size audio M1 (batch 16) after 2 warm-up
# ones, on one thread (worker threads' own malloc arenas would add faults of their own)
_FAULTS = """
import resource, torch, sparsespike
from sparsespike import _allocator
from sparsespike.models import build_model
sparsespike.configure_allocator()
torch.set_num_threads(1)
torch.manual_seed(0)
model = build_model("m1", "audio")
x = (torch.rand(16, 100, 700) < 0.05).float()
faults = []
with torch.no_grad():
    for _ in range(2):
        model(x)
    for _ in range(10):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(_allocator.mode, *faults)
"""


def _faults(malloc: str) -> tuple[str, list[int]]:
    env = {**os.environ, "SPARSESPIKE_MALLOC": malloc}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
    mode, *faults = out.stdout.split()
    return mode, [int(f) for f in faults]


@pytest.mark.slow  # end to end: whole runs or subprocesses
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_reused_without_page_faults():
    reuse_mode, reuse = _faults("reuse")
    system_mode, system = _faults("system")
    assert (reuse_mode, system_mode) == ("reuse", "system")
    # glibc's defaults hand the layers' 3-7 MB blocks back and fault them in again, forward after
    # forward (measured 31,000-43,000 faults in 10; its adaptive threshold varies the count); kept
    # memory is reused without faults in a typical forward (the median: the machine may reclaim
    # idle pages now and then, bursts of thousands seen)
    assert sum(system) > 10000
    assert sorted(reuse)[len(reuse) // 2] < 100


def test_bad_setting_is_a_clear_error(monkeypatch):
    from sparsespike import _allocator

    monkeypatch.setattr(_allocator, "mode", "unset")
    monkeypatch.setenv("SPARSESPIKE_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match="SPARSESPIKE_MALLOC must be 'reuse' or 'system'"):
        _allocator.configure()


_IMPORT = """
import os, sys
before = dict(os.environ)
import sparsespike
from sparsespike import _allocator
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(_allocator.mode, changed)
"""


def test_importing_changes_nothing_process_wide():
    # no environment variable set or changed, no mallopt call: the host program's process is its own
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "SPARSESPIKE_MALLOC")}
    out = subprocess.run([sys.executable, "-c", _IMPORT], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split(maxsplit=1) == ["unset", "[]\n"]


def test_the_command_line_tools_opt_in(monkeypatch, capsys):
    from sparsespike import _allocator
    from sparsespike import train as train_cli

    calls = []
    monkeypatch.setattr(_allocator, "configure", lambda: calls.append(1) or "reuse")
    with pytest.raises(SystemExit) as exit_info:  # a usage error (argparse's), after the opt-in
        train_cli.main(["--lr", "nan"])
    assert exit_info.value.code == 2 and calls == [1]
