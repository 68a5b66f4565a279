"""Tensors of more than 2^31 elements for CPU tests of the kernels' 64-bit offsets.

A Triton kernel that forms an element offset in int32 wraps past 2^31 and reads or writes the
wrong address. Showing that no kernel does needs tensors of more than 2^31 elements and launches
whose programs reach their far end, on a CPU under TRITON_INTERPRET=1, in seconds:

- huge_zeros: a zero tensor of any size that costs no memory until touched (a sparse file,
  mapped shared: such mappings are not subject to overcommit, and only the pages touched
  become resident).
- last_programs: runs only the last programs along grid axis 0 of every interpreted launch (a
  full grid of millions of programs would take hours), turns an access outside every argument
  tensor (a wrapped offset) into an error instead of a crash, and hands the launchers' output
  allocations out as zeros (huge ones as huge_zeros), so programs that did not run leave zeros.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import math
import os
import sys
import tempfile

import numpy as np
import pytest
import torch

# launcher allocations from this many elements on are sparse files; smaller ones are zero-filled
ROUTE_NUMEL = 2**22
LAUNCHERS = "sparsespike.kernels"


def huge_zeros(shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Zeros of ``shape`` mapped from a sparse file (unlinked at once: the mapping keeps it);
    skips the test where the machine cannot create or map one."""
    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    nbytes = numel * torch.tensor([], dtype=dtype).element_size()
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix="sparsespike-huge-")
        os.close(fd)
        os.truncate(path, max(nbytes, 1))
        flat = torch.from_file(path, shared=True, size=numel, dtype=dtype)
    except (OSError, RuntimeError) as e:
        pytest.skip(f"cannot map a sparse file of {nbytes} bytes: {e}")
    finally:
        if path is not None:
            os.unlink(path)
    _no_readahead(flat)
    return flat.view(shape)


def _no_readahead(t: torch.Tensor) -> None:
    """madvise(MADV_RANDOM) on t's mapping, where libc has it: a read of a hole would otherwise
    bring in its neighbours too (a column block of a 46344^2 weight resident as 2.6 GB, not 0.2)."""
    try:
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    start = t.untyped_storage().data_ptr()
    page = start & ~(os.sysconf("SC_PAGE_SIZE") - 1)
    madvise(page, start - page + t.untyped_storage().nbytes(), 1)  # MADV_RANDOM


def _same_storage(dev, hst) -> bool:
    """Whether the interpreter ran on the argument's own storage (a CPU tensor): nothing to copy back."""
    from triton.runtime.interpreter import _unwrap_tensor

    if not hasattr(dev, "data_ptr"):
        return False
    return _unwrap_tensor(dev).untyped_storage().data_ptr() == _unwrap_tensor(hst).untyped_storage().data_ptr()


def _bounds(args_hst, kwargs_hst) -> list[tuple[int, int]]:
    """[start, end) byte ranges of the storages of every tensor argument."""
    from triton.runtime.interpreter import _unwrap_tensor

    ranges = []
    for arg in [*args_hst, *kwargs_hst.values()]:
        if hasattr(arg, "data_ptr"):
            storage = _unwrap_tensor(arg).untyped_storage()
            ranges.append((storage.data_ptr(), storage.data_ptr() + storage.nbytes()))
    return ranges


def _checked(access, ranges, name: str, what: str, reached: dict):
    """``access`` (the builder's masked load or store) refusing an address outside every range,
    and recording in reached[name] the farthest element offset into an argument's storage that
    it touched."""

    def run(ptrs, *args):
        mask = args[0] if what == "load" else args[1]
        addresses = ptrs.data[np.broadcast_to(mask.data, ptrs.data.shape)].astype(np.uint64)
        width = max(1, ptrs.get_element_ty().primitive_bitwidth // 8)
        inside = np.zeros(addresses.shape, dtype=bool)
        for start, end in ranges:
            here = (addresses >= start) & (addresses + width <= end)
            if here.any():
                farthest = int(addresses[here].max() - np.uint64(start)) // width
                reached[name] = max(reached.get(name, 0), farthest)
            inside |= here
        if not inside.all():
            bad = int(addresses[~inside][0])
            raise IndexError(f"{name}: {what} at {bad:#x}, outside every argument tensor (a wrapped offset?)")
        return access(ptrs, *args)

    return run


def _tail_call(count: int, reached: dict):
    """GridExecutor.__call__ of triton's interpreter (3.9, the pinned one), running only the last
    ``count`` programs along axis 0 (all along axes 1 and 2), checking every address, and copying
    back only storages the interpreter copied (copying an 8 GB CPU storage onto itself would
    touch every page)."""
    import triton
    from triton.runtime import interpreter as interp

    def __call__(self, *args_dev, **kwargs):
        argspec = inspect.getfullargspec(self.fn)
        kwargs = {k: v for k, v in kwargs.items() if k in argspec.args or k in argspec.kwonlyargs}
        args_hst, kwargs_hst = self._init_args_hst(args_dev, kwargs)
        for hook in self.pre_run_hooks:
            hook(*args_hst, **kwargs_hst)
        ranges, name = _bounds(args_hst, kwargs_hst), self.fn.__name__
        builder, plain = interp.interpreter_builder, type(interp.interpreter_builder)
        patch_scope = interp._patch_lang(self.fn)
        builder.create_masked_load = _checked(plain.create_masked_load.__get__(builder), ranges, name, "load", reached)
        builder.create_masked_store = _checked(
            plain.create_masked_store.__get__(builder), ranges, name, "store", reached
        )
        try:
            args = inspect.getcallargs(self.fn, *args_hst, **kwargs_hst)
            args = {k: v if k in self.constexprs else interp._implicit_cvt(v) for k, v in args.items()}
            grid = self.grid(args) if callable(self.grid) else self.grid
            grid = tuple(grid) + (1,) * (3 - len(grid))
            builder.set_grid_dim(*grid)
            try:
                for x in range(max(0, grid[0] - count), grid[0]):
                    for y in range(grid[1]):
                        for z in range(grid[2]):
                            builder.set_grid_idx(x, y, z)
                            self.fn(**args)
            except Exception as e:
                if triton.knobs.compilation.front_end_debugging:
                    raise
                raise interp.InterpreterError(repr(e)) from e
        finally:
            del builder.create_masked_load, builder.create_masked_store
            patch_scope.restore()
        copied = [(d, h) for d, h in zip(args_dev, args_hst) if not _same_storage(d, h)]
        copied_kw = {k: v for k, v in kwargs.items() if not _same_storage(v, kwargs_hst[k])}
        self._restore_args_dev(
            [d for d, _ in copied], [h for _, h in copied], copied_kw, {k: kwargs_hst[k] for k in copied_kw}
        )

    return __call__


def _zeros_for_launchers(empty, like: bool):
    """torch.empty / torch.empty_like that, called from a kernel launcher (sparsespike.kernels.*),
    returns zeros: huge_zeros from ROUTE_NUMEL elements, zero-filled below. Other callers
    (the interpreter, torch itself) get the original."""

    def allocate(*args, **kwargs):
        if not sys._getframe(1).f_globals.get("__name__", "").startswith(LAUNCHERS):
            return empty(*args, **kwargs)
        if like:
            shape, dtype = args[0].shape, kwargs.get("dtype") or args[0].dtype
        else:
            shape = args[0] if len(args) == 1 and not isinstance(args[0], int) else args
            dtype = kwargs.get("dtype") or torch.get_default_dtype()
        if math.prod(shape) >= ROUTE_NUMEL:
            return huge_zeros(shape, dtype)
        return empty(*args, **kwargs).zero_()

    return allocate


@contextlib.contextmanager
def last_programs(count: int):
    """While active, every interpreted launch runs only its last ``count`` programs along grid
    axis 0, and the launchers' outputs start as zeros (see the module docstring). Yields a dict
    {kernel name: farthest element offset into an argument that its programs loaded or stored}."""
    from triton.runtime import interpreter as interp

    reached: dict[str, int] = {}
    saved = interp.GridExecutor.__call__, torch.empty, torch.empty_like, torch.zeros
    interp.GridExecutor.__call__ = _tail_call(count, reached)
    torch.empty = _zeros_for_launchers(saved[1], like=False)
    torch.empty_like = _zeros_for_launchers(saved[2], like=True)
    torch.zeros = _zeros_for_launchers(saved[1], like=False)  # zero-filled either way
    try:
        yield reached
    finally:
        interp.GridExecutor.__call__, torch.empty, torch.empty_like, torch.zeros = saved
