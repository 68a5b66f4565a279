"""glibc malloc settings that keep freed activation memory in the process for reuse.

A spiking model's forward allocates and frees tensors of a few MiB to a few tens of MiB per
layer and call ([T x B, N] currents and spikes). With glibc's defaults that memory goes back to
the kernel between calls (the heap top is trimmed past a threshold that follows the largest
recent mmap, at most 64 MiB), so the next call touches fresh pages and pays a page fault per
4 KiB: audio M1's forward at batch 32 (2-core VM) took 47 ms with 8,800 page faults (34 MB) a
call, and 30 ms with 700 once the memory was kept. PyTorch's own CPU tuning guide reaches for
jemalloc or tcmalloc for the same reason; this gets the effect with glibc by two mallopt calls,
made by ``sparsespike.configure_allocator()`` (the command-line tools call it first; importing
sparsespike does not, since a library must not change its host process):

- M_MMAP_THRESHOLD = 32 MiB (glibc's largest): allocations below it come from the heap, whose
  freed blocks are reused; larger ones keep their own mapping (sparsespike's kernels advise
  those outputs to use huge pages, see ``_backend.empty_output``).
- M_TRIM_THRESHOLD = 512 MiB: up to that much free memory at the heap top stays mapped.

The cost: the process keeps up to 512 MiB of freed memory mapped after a peak instead of
returning it. ``SPARSESPIKE_MALLOC=system`` leaves glibc's defaults alone; nothing is changed on
other C libraries or platforms. Both settings are process-wide, so benchmarks compare every
implementation under the same allocator.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 512 << 20
_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3

# what configure() did, for benchmark reports: "reuse", "system" (opted out) or "unavailable"
mode = "unset"


def configure() -> str:
    """Apply the settings (once; SPARSESPIKE_MALLOC=system skips them) and return the mode."""
    global mode
    if mode != "unset":
        return mode
    choice = os.environ.get("SPARSESPIKE_MALLOC", "reuse")
    if choice not in ("reuse", "system"):
        raise ValueError(f"$SPARSESPIKE_MALLOC must be 'reuse' or 'system', got {choice!r}")
    if choice == "system":
        mode = "system"
    elif platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        mode = "unavailable"
    else:
        libc = ctypes.CDLL(None)  # the C library the interpreter already runs on
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
        mode = "reuse" if ok else "unavailable"
    return mode
