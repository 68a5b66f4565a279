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
