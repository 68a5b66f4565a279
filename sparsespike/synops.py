"""Counting synaptic operations where the work happens.

A synaptic operation (SynOp) is one spike delivered to one target synapse: for a layer fed by a
spike tensor, (number of nonzero inputs) x (fan-out of each input). Every sparsespike op reports
the nonzeros its kernel compacted; while a :class:`SynOpCounter` is active, each call adds
``nnz x fan_out`` to it as a device tensor (no host synchronisation); the totals are read, and
the device waited for, only when asked.

    with sparsespike.count_synops() as counter:
        with sparsespike.synop_scope("fc1"):
            y = layer(x)
    counter.total()        # int
    counter.by_scope()     # {"fc1": ...}

Calls traced by torch.compile are not counted (the counter is Python state outside the graph).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import torch

_active: list["SynOpCounter"] = []
_scopes: list[str] = []


class SynOpCounter:
    """Accumulates SynOps per (scope, op) while active; use via :func:`count_synops`."""

    def __init__(self) -> None:
        self._acc: dict[tuple[str, str, str], torch.Tensor] = {}
        self._calls: dict[tuple[str, str], int] = defaultdict(int)

    def _add(self, scope: str, op: str, synops: torch.Tensor) -> None:
        key = (scope, op, str(synops.device))  # one accumulator per device: no cross-device copies
        if key in self._acc:
            self._acc[key].add_(synops)
        else:
            self._acc[key] = synops.clone()
        self._calls[(scope, op)] += 1

    def reset(self) -> None:
        self._acc.clear()
        self._calls.clear()

    def total(self) -> int:
        """All SynOps counted so far (waits for the device)."""
        return sum(int(v.item()) for v in self._acc.values())

    def by_scope(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (scope, _, _), v in self._acc.items():
            out[scope] += int(v.item())
        return dict(out)

    def by_op(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for (_, op, _), v in self._acc.items():
            out[op] += int(v.item())
        return dict(out)

    def calls(self) -> dict[tuple[str, str], int]:
        """Number of op calls counted per (scope, op)."""
        return dict(self._calls)

    def __enter__(self) -> "SynOpCounter":
        _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _active.remove(self)


def count_synops() -> SynOpCounter:
    """A new counter; use it as a context manager around the calls to count."""
    return SynOpCounter()


@contextlib.contextmanager
def synop_scope(name: str):
    """Label the SynOps of the calls inside (nested scopes join with '.')."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"scope name must be a non-empty string, got {name!r}")
    _scopes.append(name)
    try:
        yield
    finally:
        _scopes.pop()


def counting() -> bool:
    """True when some counter is active (ops skip all counting work otherwise)."""
    return bool(_active) and not torch.compiler.is_compiling()


def record(op: str, nnz: torch.Tensor, fan_out: int) -> None:
    """Add nnz x fan_out SynOps of one call of `op` to every active counter."""
    if not counting():
        return
    synops = nnz.to(torch.int64) * int(fan_out)
    scope = ".".join(_scopes)
    for counter in _active:
        counter._add(scope, op, synops)
