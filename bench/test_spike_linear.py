"""spike_linear under pytest-benchmark: 3200 rows (T=100 x B=32), 1024 -> 1024, fp32.

    pytest bench/test_spike_linear.py --benchmark-only --benchmark-group-by=param:density

The same measurements as `python -m sparsespike.bench --suite spike_linear`, in
pytest-benchmark's format (compare runs with --benchmark-autosave / --benchmark-compare).
"""

import pytest
import torch

from sparsespike.bench.spike_linear import _inputs, runners

DENSITIES = [0.5, 0.1, 0.05, 0.03, 0.015, 0.01, 0.005]
BACKENDS = ["dense", "embedding_bag", "sparsespike-cpp", "sparsespike-auto"]


@pytest.mark.parametrize("mode", ["forward", "forward+backward"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("density", DENSITIES)
def test_spike_linear(benchmark, density, backend, mode):
    device = torch.device("cpu")
    spikes, weight, bias, grad_out = _inputs(3200, 1024, 1024, density, device)
    fn = runners(spikes, weight, bias, grad_out, mode, device)[backend]
    benchmark.extra_info.update(rows=3200, in_features=1024, out_features=1024)
    benchmark.pedantic(fn, rounds=7, warmup_rounds=2)
