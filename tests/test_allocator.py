"""sparsespike._allocator: glibc keeps freed activation memory for reuse (measured as page
faults), SPARSESPIKE_MALLOC=system leaves glibc alone, a bad value is a clear error."""

import os
import platform
import subprocess
import sys

import pytest

# the minor page faults of 5 forwards of a study-size audio M1 (batch 16) after 2 warm-up ones
_FAULTS = """
import resource, torch, sparsespike
from sparsespike import _allocator
from sparsespike.models import build_model
torch.manual_seed(0)
model = build_model("m1", "audio")
x = (torch.rand(16, 100, 700) < 0.05).float()
with torch.no_grad():
    for _ in range(2):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        model(x)
print(_allocator.mode, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(malloc: str) -> tuple[str, int]:
    env = {**os.environ, "SPARSESPIKE_MALLOC": malloc}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
    mode, faults = out.stdout.split()
    return mode, int(faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_reused_without_page_faults():
    reuse_mode, reuse = _faults("reuse")
    system_mode, system = _faults("system")
    assert (reuse_mode, system_mode) == ("reuse", "system")
    # measured: glibc's defaults hand the layers' 3-7 MB blocks back and fault them in again,
    # ~20,000 faults (80 MB) in 5 forwards; with the memory kept, 1-500
    assert system > 5000
    assert reuse < system / 10


def test_bad_setting_is_a_clear_error(monkeypatch):
    from sparsespike import _allocator

    monkeypatch.setattr(_allocator, "mode", "unset")
    monkeypatch.setenv("SPARSESPIKE_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match="SPARSESPIKE_MALLOC must be 'reuse' or 'system'"):
        _allocator.configure()
