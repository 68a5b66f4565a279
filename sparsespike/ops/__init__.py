"""Ops: one module per op, each with its reference, C++ path, Triton path and custom-op wiring."""

from .spike_linear import spike_linear, spike_linear_reference

__all__ = ["spike_linear", "spike_linear_reference"]
