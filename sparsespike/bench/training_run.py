"""One training run for the suites that measure training (accuracy, recipe): fit() into a
temporary folder, every epoch to the end (no early stop), its epoch lines to stderr beside the
suite's progress."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from typing import Any

import torch

from ..training import TrainConfig, fit


def train_once(device: torch.device, **fields: Any) -> tuple[TrainConfig, dict]:
    """(the run's TrainConfig, fit's summary) for TrainConfig(**fields) on ``device``."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(patience=fields["epochs"], device=device.type, out=out, progress=False, **fields)
        with contextlib.redirect_stdout(sys.stderr):
            return config, fit(config)
