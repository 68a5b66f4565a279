"""pytest-benchmark suites: `pytest bench/ --benchmark-only` (not part of `make test`)."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
