"""Shared checks of the command-line tools (train, study, energy, bench).

A user's mistake gets one line on stderr naming the flag, ``<prog>: error: <flag> <value>: <problem>``,
and exit status 2, as argparse's usage errors. Every check runs before the work starts, so a long run
never ends in an error about a path that could have been checked at its start.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

import torch

# Raised by the library for a user's mistake: bad values, missing or unreadable files and folders.
SETUP_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
)


class UsageError(ValueError):
    """A command-line mistake; the message names the flag."""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line too (the usage is in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind: type, minimum: float, strict: bool) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` above ``minimum`` (NaN compares false, so it is tested apart)."""
    bound = f"{'>' if strict else '>='} {minimum:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'an integer' if kind is int else 'a number'} {bound}, got {text!r}"
            ) from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be a finite {'integer' if kind is int else 'number'} {bound}, got {text}"
            )
        return value

    return parse


positive_float = _number(float, 0, strict=True)
non_negative_float = _number(float, 0, strict=False)
positive_int = _number(int, 1, strict=False)
non_negative_int = _number(int, 0, strict=False)


def _problem(flag: str, value, problem: str) -> UsageError:
    return UsageError(f"{flag} {value}: {problem}")


def _existing_folder(flag: str, value, path: Path) -> Path:
    """The nearest existing folder at or above ``path`` (a file on the way is an error)."""
    folder = path.absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise _problem(flag, value, f"{folder} is a file, not a folder")
    return folder


def _writable(flag: str, value, folder: Path) -> None:
    # a real probe: os.access says yes to root on read-only or virtual file systems
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _problem(flag, value, f"cannot write in {folder} ({exc.strerror or exc})") from None


def output_dir(flag: str, path: Optional[str], subfolders: tuple[str, ...] = ()) -> None:
    """A folder the tool creates or writes into (and ``subfolders`` it will create there): no file
    in the way, and writable."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise _problem(flag, path, "is a file, not a folder")
    for sub in subfolders:
        if (p / sub).exists() and not (p / sub).is_dir():
            raise _problem(flag, path, f"{p / sub} is a file, not a folder")
    _writable(flag, path, _existing_folder(flag, path, p))


def output_file(flag: str, path: Optional[str]) -> None:
    """A file the tool writes (atomically, so its folder must be writable): not a folder."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir() or str(path).endswith(("/", "\\")):
        raise _problem(flag, path, "is a folder, not a file")
    _writable(flag, path, _existing_folder(flag, path, p.parent))


def data_folders(args) -> None:
    """The dataset folders a tool writes: --cache-dir, and --data-dir when it may --download."""
    output_dir("--cache-dir", args.cache_dir)
    if getattr(args, "download", False):
        output_dir("--data-dir", args.data_dir)


def input_file(flag: str, path: Optional[str]) -> None:
    if path is not None and not Path(path).is_file():
        raise _problem(flag, path, "is a folder, not a file" if Path(path).is_dir() else "no such file")


def device(flag: str, value: str, allow_auto: bool = True) -> str:
    """``value`` if it names a device this machine has: cpu, cuda, cuda:N (or auto)."""
    if allow_auto and value == "auto":
        return value
    try:
        parsed = torch.device(value)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise _problem(flag, value, f"must be {'auto, ' if allow_auto else ''}cpu, cuda or cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise _problem(flag, value, "torch sees no CUDA device on this machine (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise _problem(flag, value, f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    return value


def warn(prog: str, message: str) -> None:
    """One warning line on stderr, ``<prog>: warning: <message>`` (e.g. a deprecated flag)."""
    print(f"{prog}: warning: {message}", file=sys.stderr)


def fail(prog: str, exc: BaseException, status: int = 2) -> int:
    """Print ``exc`` as one line and return the exit status."""
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status


def guarded(prog: str, body: Callable[[Callable[[], None]], int]) -> int:
    """Run a tool's ``body(ready)``; it calls ready() when its set-up (flags, paths, data, checkpoints,
    model) is done and the long work begins.

    Every tool first keeps freed activation memory for reuse (the glibc settings of
    :func:`sparsespike.configure_allocator`; SPARSESPIKE_MALLOC=system opts out): a process-wide
    change a command-line tool may make and a library import must not.

    Before ready(): the library's user-facing errors (SETUP_ERRORS, corrupt data or checkpoint) are
    one line and status 2. After it, only the errors that are always about the user's files or
    settings stay one line (corrupt data or checkpoint, a diverged training: status 1); a ValueError
    or TypeError from the computation is a bug and keeps its traceback.
    """
    from .data.errors import CorruptDataError
    from .training.checkpoint import CheckpointError
    from .training.loop import TrainingDiverged

    started = False

    def ready() -> None:
        nonlocal started
        started = True

    from ._allocator import configure as configure_allocator

    try:
        configure_allocator()
        return body(ready)
    except TrainingDiverged as exc:
        return fail(prog, exc, 1)
    except (CorruptDataError, CheckpointError) as exc:
        return fail(prog, exc, 1 if started else 2)
    except SETUP_ERRORS as exc:
        if started:
            raise
        return fail(prog, exc, 2)


def add_surrogate_arguments(p: argparse.ArgumentParser) -> None:
    """--surrogate, --surrogate-param and --grad-band, as train and study take them."""
    from .ops.lif_reference import SURROGATES

    p.add_argument(
        "--surrogate",
        choices=SURROGATES,
        default="fast_sigmoid",
        help="every LIF's surrogate gradient (default: fast_sigmoid, the study's)",
    )
    p.add_argument(
        "--surrogate-param",
        type=positive_float,
        default=None,
        help="its slope / alpha (default: 25 for fast_sigmoid, as the study; else the surrogate's default)",
    )
    p.add_argument(
        "--grad-band",
        type=positive_float,
        default=None,
        help="truncate the surrogate to |membrane - threshold| < this band: the backward then runs "
        "only at band-active neuron-steps (exact for that surrogate); triangle has a band of its own",
    )


def add_activity_arguments(p: argparse.ArgumentParser, default_weight: float) -> None:
    """--activity-target and --activity-weight (sparsespike.training.activity), as train and study
    take them; the study turns the regulariser on by default, train leaves it off."""
    p.add_argument(
        "--activity-target",
        type=positive_float,
        default=0.03,
        help="hidden firing rate above which the activity regulariser pulls back (default: 0.03, the "
        "study's >97%% sparsity)",
    )
    p.add_argument(
        "--activity-weight",
        type=non_negative_float,
        default=default_weight,
        help="weight of the activity penalty, weight x sum over hidden layers of max(0, rate - target)^2 "
        f"(default: {default_weight:g}; 0 turns it off)",
    )


def add_readout_argument(p: argparse.ArgumentParser, default: str) -> None:
    """--readout, as train and study take it."""
    from .models.backbones import READOUTS

    p.add_argument(
        "--readout",
        choices=READOUTS,
        default=default,
        help="the logits: the output layer's spike counts (count, the study's) or its neurons' mean membrane "
        f"without threshold (membrane: a gradient even when every output neuron is silent; default {default}). "
        "With --memory study, counts are one LIF step's 0/1 outputs: measured at chance",
    )
