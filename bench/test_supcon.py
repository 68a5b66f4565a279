"""supcon under pytest-benchmark: features [B, 512], 10 classes, temperature 0.07, fp32.

    pytest bench/test_supcon.py --benchmark-only --benchmark-group-by=param:batch

The same forward+backward timings as `python -m sparsespike.bench --suite supcon` (without its
memory columns), in pytest-benchmark's format.
"""

import pytest
import torch

from sparsespike.bench.supcon import FULL_BATCHES, _inputs, runners


@pytest.mark.parametrize("impl", ["naive", "chunked"])
@pytest.mark.parametrize("batch", FULL_BATCHES)
def test_supcon(benchmark, batch, impl):
    features, labels = _inputs(batch, torch.device("cpu"))
    benchmark.extra_info.update(batch=batch)
    benchmark.pedantic(runners(features, labels)[impl], rounds=5, warmup_rounds=1)
