"""Test setup: the Triton interpreter on machines without CUDA, markers, and a JSON summary.

TRITON_INTERPRET must be set before any Triton kernel is decorated, so it is set here, at the
top of the first file pytest imports.
"""

import json
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("sparsespike", deadline=None, print_blob=True)
settings.load_profile("sparsespike")

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """With SPARSESPIKE_TEST_REPORT=PATH, write pass/fail counts and failures as JSON."""
    path = os.environ.get("SPARSESPIKE_TEST_REPORT")
    if not path:
        return
    stats = terminalreporter.stats
    report = {
        "exit_status": int(exitstatus),
        "counts": {k: len(v) for k, v in stats.items() if k},
        "failed": [r.nodeid for r in stats.get("failed", [])],
        "device": torch.cuda.get_device_name(0) if HAS_CUDA else "cpu",
        "torch": torch.__version__,
    }
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


@pytest.fixture(autouse=True)
def _fresh_dispatch_state():
    """Crossover overrides and default backend never leak between tests."""
    import sparsespike

    yield
    sparsespike.dispatch.reset_crossover()
    sparsespike.set_default_backend(None)
