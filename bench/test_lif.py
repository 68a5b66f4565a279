"""lif under pytest-benchmark: [T=100, B=32, N=1024] and [T=25, B=8, 128*34*34], fp32.

    pytest bench/test_lif.py --benchmark-only --benchmark-group-by=param:shape,param:mode

The same measurements as `python -m sparsespike.bench --suite lif`, in pytest-benchmark's format.
"""

import pytest
import torch

from sparsespike.bench.lif import FULL_SHAPES, MODES, runners

BACKENDS = ["reference", "sparsespike-cpp", "sparsespike-auto", "snntorch"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", FULL_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_lif(benchmark, shape, backend, mode):
    device = torch.device("cpu")
    current = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.3
    table = runners(current, mode, device)
    if backend not in table:
        pytest.skip(f"{backend} is not installed")
    benchmark.extra_info.update(shape=list(shape))
    benchmark.pedantic(table[backend], rounds=5, warmup_rounds=1)
