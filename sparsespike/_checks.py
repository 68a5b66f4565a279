"""Checks of plain Python values (sizes, counts, hyper-parameters), shared by every layer: an
exception that names the argument. NaN compares false with everything, so a range is tested by
what passes it, never by what fails it."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Optional


def require_int(value, name: str, minimum: Optional[int] = 1) -> int:
    """An integer (Python's or numpy's, never a bool or a float) >= ``minimum`` (None: any), as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def require_finite_number(value, name: str, *, positive: bool = False, non_negative: bool = False) -> float:
    """A real number (Python's or numpy's, never a bool) that is finite, and > 0 with ``positive``
    or >= 0 with ``non_negative``, as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    in_range = value > 0 if positive else value >= 0 if non_negative else True
    if not (math.isfinite(value) and in_range):
        bound = " > 0" if positive else " >= 0" if non_negative else ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value}")
    return value
