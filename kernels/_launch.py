"""Launch options and limits shared by every kernel module.

Fusion of multiply-adds is chosen explicitly at every launch (Triton's default changes between
releases):

- EXACT: no floating-point contraction. Eager torch on CUDA rounds a * b + c twice, so a kernel
  that promises bit-equality with the pure-torch reference (or runs no float arithmetic, only
  copies) launches with this.
- TOLERANT: contraction allowed (a * b + c may become one fused multiply-add, rounded once).
  For kernels whose results are compared with the reference at a tolerance.

Under TRITON_INTERPRET=1 the option is accepted and ignored (numpy rounds every operation).

Grid limits: CUDA allows 2^31 - 1 programs along axis 0 and 65535 along axes 1 and 2. Each kernel
module computes its grids in small named functions that its launchers call, and lists them for
given shapes in ``launch_grids``; ``check_grid`` says whether a grid fits.
"""

from __future__ import annotations

EXACT = {"enable_fp_fusion": False}
TOLERANT = {"enable_fp_fusion": True}

MAX_GRID = (2**31 - 1, 65535, 65535)


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for non-negative ints (triton.cdiv without importing triton)."""
    return -(-a // b)


def check_grid(grid: tuple) -> tuple:
    """The grid itself when every axis is within CUDA's limits (and at least 1), else ValueError."""
    if not 1 <= len(grid) <= 3:
        raise ValueError(f"a grid has 1 to 3 axes, got {grid!r}")
    for axis, (size, limit) in enumerate(zip(grid, MAX_GRID)):
        if not isinstance(size, int) or not 1 <= size <= limit:
            raise ValueError(f"grid {grid!r}: axis {axis} must be an int in [1, {limit}], got {size!r}")
    return grid
