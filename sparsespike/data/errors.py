"""Errors raised by sparsespike.data: every message names the file it is about."""

from __future__ import annotations

import math
import operator
import os


class CorruptDataError(ValueError):
    """A data file is truncated, unreadable or lacks content that its format requires."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"corrupt or truncated data file {self.path}: {reason}")


def missing_files(what: str, expected: list[str], how: str) -> FileNotFoundError:
    """A FileNotFoundError listing the exact expected paths and how to get them."""
    lines = "\n".join(f"  {p}" for p in expected)
    # Only the message is set: OSError's str() would otherwise replace it with "[Errno ...]".
    return FileNotFoundError(f"{what}: expected\n{lines}\n{how}")


def check_int(name: str, value, minimum: int = 1) -> int:
    """`value` as an int >= minimum; TypeError/ValueError naming `name` (bools and floats refused:
    int() would silently truncate 2.5 and accept True)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value, minimum: float = 0.0, strict: bool = False) -> float:
    """`value` as a finite float >= minimum (> minimum when strict); errors name `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not (v > minimum if strict else v >= minimum):
        raise ValueError(f"{name} must be finite and {'>' if strict else '>='} {minimum}, got {value!r}")
    return v


def checked_index(index, n: int) -> int:
    """A dataset index as an int in [0, n) (negative counts from the end): TypeError/IndexError,
    never a decoding error, when it is not one."""
    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"index must be an integer, got {type(index).__name__}") from None
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for {n} samples")
    return i % n
