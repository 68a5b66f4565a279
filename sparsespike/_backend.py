"""Which implementations are available, and which one a call uses.

Every op has a pure-torch reference, a C++ CPU kernel (``sparsespike._C``) and a Triton kernel
(``sparsespike.kernels``). A missing or broken C++ extension never breaks ``import sparsespike``:
ops fall back to the reference with one warning, and :func:`backends` says why.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

BACKENDS = ("auto", "reference", "cpp", "triton")
_ENV_BACKEND = "SPARSESPIKE_BACKEND"

_cpp_module: ModuleType | None = None
_cpp_error: str | None = None
_cpp_warned = False
_triton_modules: dict[str, ModuleType | None] = {}
_triton_error: str | None = None
_triton_op_errors: dict[str, str] = {}
_default_backend: str | None = None

try:
    from . import _C as _cpp_module  # noqa: N811
except Exception as exc:  # any load failure (missing .so, ABI, symbol) is reported, not raised
    _cpp_module = None
    _cpp_error = f"{type(exc).__name__}: {exc}"


def cpp() -> ModuleType | None:
    """The C++ extension module, or None (with one warning per process) when it is unavailable."""
    global _cpp_warned
    if _cpp_module is None and not _cpp_warned:
        _cpp_warned = True
        warnings.warn(
            "sparsespike: the C++ extension sparsespike._C could not be loaded "
            f"({_cpp_error}); CPU ops fall back to the pure-torch reference. "
            "Rebuild with `pip install -e .` (see README).",
            RuntimeWarning,
            stacklevel=3,
        )
    return _cpp_module


# glibc gives allocations above 32 MiB (its largest mmap threshold, which sparsespike._allocator
# sets) their own mapping, fresh every time; below that the heap's freed memory is reused.
_HUGE_PAGE_MIN_BYTES = 32 << 20
_huge_pages = os.environ.get("SPARSESPIKE_HUGEPAGES", "1") != "0"


def empty_output(like: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """torch.empty for a C++ kernel's output (``like``'s dtype and device, its shape by default).

    Outputs of 32 MiB and more are advised to use transparent huge pages before anything
    touches them: on a 118 MB output, the first-touch page faults measured 54 ms with 4 KiB
    pages and 12 ms with huge pages (SPARSESPIKE_HUGEPAGES=0 turns this off).
    """
    out = torch.empty(like.shape if shape is None else shape, dtype=like.dtype, device=like.device)
    if _huge_pages and out.device.type == "cpu" and out.nbytes >= _HUGE_PAGE_MIN_BYTES and _cpp_module is not None:
        _cpp_module.memory_advise_huge_pages(out.numpy())
    return out


def step_gradient_view(grad: torch.Tensor | None):
    """A [T, M] gradient as the time-looping C++ kernels take it: None, or one [M] row when it is
    broadcast over time (a loss like out.sum() hands backward a stride-0 expansion that would
    otherwise be copied to T x M), else the [T, M] array."""
    if grad is None:
        return None
    return numpy_view(grad[0]) if grad.stride(0) == 0 else numpy_view(grad)


def numpy_view(t: torch.Tensor):
    """A numpy view of a CPU tensor for the C++ kernels (contiguous; a copy only if it was not)."""
    return t.detach().contiguous().numpy()


def count_set(mask: torch.Tensor) -> torch.Tensor:
    """The set entries of a bool or uint8 mask, a 0-d int64 tensor on its device: one C++ pass
    on CPU (a [100, 32768] band: 0.05 ms against torch.count_nonzero's 0.37), torch elsewhere
    (no host sync)."""
    if mask.device.type == "cpu" and mask.dtype in (torch.bool, torch.uint8) and mask.numel() and cpp() is not None:
        return torch.tensor(cpp().spikes_count(numpy_view(mask.reshape(1, -1)), torch.get_num_threads()))
    return torch.count_nonzero(mask)


def triton_kernels(op: str = "spike_linear") -> ModuleType | None:
    """The Triton kernels of one op (``sparsespike.kernels.<op>``), imported on first use, or None
    when Triton is unavailable.

    On a machine without CUDA, Triton can only run through its interpreter, which must be
    switched on before the kernels are decorated: we set TRITON_INTERPRET=1 here unless the
    user chose otherwise.
    """
    global _triton_error
    if op not in _triton_modules:
        if not torch.cuda.is_available():
            os.environ.setdefault("TRITON_INTERPRET", "1")
        try:
            _require_interpretable_triton()
            _triton_modules[op] = _import_kernels(op)
        except Exception as exc:
            _triton_modules[op] = None
            _triton_error = _triton_op_errors[op] = f"{type(exc).__name__}: {exc}"
    return _triton_modules[op]


def require_triton_kernels(op: str) -> ModuleType:
    """triton_kernels(op), or a RuntimeError saying why that op's kernels could not be loaded."""
    kernels = triton_kernels(op)
    if kernels is None:
        raise RuntimeError(f"the Triton kernels of {op} are unavailable: {_triton_op_errors.get(op)}")
    return kernels


def _require_interpretable_triton() -> None:
    """Under the interpreter, Triton's own library (tl.sum, tl.cdiv, ...) must have been decorated
    in interpreter mode too, that is with TRITON_INTERPRET=1 set before triton was first imported.
    Anything that imported triton earlier (torch does, e.g. for a fused optimizer) leaves those
    compiled-mode functions, and every kernel calling one fails with "Cannot call @triton.jit'd
    outside of the scope of a kernel": say so before any kernel runs."""
    if not triton_interpreted() or "triton" not in sys.modules:
        return
    from triton.language import standard
    from triton.runtime.jit import JITFunction

    if any(isinstance(v, JITFunction) for v in vars(standard).values()):
        raise RuntimeError(
            "triton was imported before TRITON_INTERPRET=1 was set (torch imports it, e.g. for a fused "
            "optimizer), so its library is compiled-mode and the CPU interpreter cannot run kernels: "
            "set TRITON_INTERPRET=1 in the environment, or before anything imports triton"
        )


def _import_kernels(op: str) -> ModuleType:
    """sparsespike.kernels.<op>. In a source checkout (an editable install, or PYTHONPATH=. with
    an in-place build) the top-level kernels/ folder beside the package is mounted as
    sparsespike.kernels, so the kernels always match the package they sit beside; an installed
    wheel imports its own copy (a folder named kernels beside site-packages' sparsespike belongs
    to some other distribution and is never mounted)."""
    name = "sparsespike.kernels"
    root = Path(__file__).resolve().parent.parent
    folder = root / "kernels"
    source_tree = (root / "pyproject.toml").exists() and (root / "csrc").is_dir()
    if name not in sys.modules and source_tree and (folder / "__init__.py").exists():
        spec = importlib.util.spec_from_file_location(
            name, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.{op}")


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def backends() -> dict:
    """What this installation can run: one entry per backend, with the reason when it cannot."""
    kernels = triton_kernels()
    return {
        "reference": True,
        "cpp": _cpp_module is not None,
        "cpp_error": _cpp_error,
        "cpp_openmp": bool(getattr(_cpp_module, "openmp", False)),
        "triton": kernels is not None,
        "triton_error": _triton_error,
        "triton_interpret": triton_interpreted(),
        "cuda": torch.cuda.is_available(),
        "default_backend": get_default_backend(),
    }


def check_backend(backend: str) -> str:
    """``backend`` if it is one of BACKENDS. Asking for "triton" (a module built for it, a call)
    loads the Triton kernels now: on a machine without CUDA that chooses the interpreter before
    anything else imports triton (torch does when it builds an optimizer), which it must."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "triton":
        triton_kernels()
    return backend


def get_default_backend() -> str:
    """The process default: set_default_backend(), else $SPARSESPIKE_BACKEND, else "auto"."""
    if _default_backend is not None:
        return _default_backend
    env = os.environ.get(_ENV_BACKEND)
    if env is None or env == "":
        return "auto"
    if env not in BACKENDS:
        raise ValueError(f"${_ENV_BACKEND} must be one of {BACKENDS}, got {env!r}")
    return env


def set_default_backend(backend: str | None) -> None:
    """Set the backend used when a call passes backend=None; None restores the env/auto default."""
    global _default_backend
    _default_backend = None if backend is None else check_backend(backend)


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """The concrete backend for a call: "reference", "cpp", "triton" or "auto".

    Raises a clear error when an explicitly requested backend cannot run on ``device``.
    """
    backend = get_default_backend() if backend is None else check_backend(backend)
    if backend == "cpp":
        if device.type != "cpu":
            raise ValueError(f"backend='cpp' runs on CPU tensors only, got device {device}")
        if cpp() is None:
            raise RuntimeError(f"backend='cpp' requested but the C++ extension is unavailable: {_cpp_error}")
    elif backend == "triton":
        if triton_kernels() is None:
            raise RuntimeError(f"backend='triton' requested but Triton is unavailable: {_triton_error}")
        if device.type == "cpu" and not triton_interpreted():
            raise RuntimeError(
                "backend='triton' on CPU tensors needs the Triton interpreter: set "
                "TRITON_INTERPRET=1 before sparsespike's kernels are first used"
            )
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"backend='triton' runs on CUDA (or CPU, interpreted), got device {device}")
        if device.type == "cuda" and triton_interpreted():
            raise RuntimeError("backend='triton' on CUDA tensors, but TRITON_INTERPRET=1 is set")
    elif backend == "auto" and device.type == "cpu" and cpp() is None:
        backend = "reference"
    return backend
