"""The step-by-step eager baseline of the model benchmarks computes what the fused M1 computes,
and the benchmarks' peak-memory tracker counts what was allocated."""

import pytest
import torch

from sparsespike.bench.eager import EagerM1
from sparsespike.bench.models import peak_memory_mb
from sparsespike.models import build_model
from spike_data import firing_model

CASES = [("audio", (3, 12, 700), {"hidden_sizes": (48, 48), "feature_size": 24}),
         ("visual", (2, 6, 2, 34, 34), {"hidden_sizes": (3, 4), "feature_size": 16})]


@pytest.mark.parametrize("modality,shape,options", CASES)
def test_eager_m1_equals_the_fused_model(modality, shape, options):
    torch.manual_seed(0)
    model = firing_model("m1", modality, torch.float64, **options)
    x = (torch.rand(shape) < 0.1).double()
    eager = EagerM1(model)
    out = model(x)
    counts, rates = eager(x)
    assert out.logits.sum() > 0 and rates.sum() > 0
    assert torch.equal(out.logits, counts) and torch.equal(out.rates, rates)  # float64, same arithmetic
    params = list(model.parameters())
    fused = torch.autograd.grad(out.logits.sum() + out.rates.sum(), params)
    stepped = torch.autograd.grad(counts.sum() + rates.sum(), params)
    for a, b in zip(fused, stepped):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_streaming_steps_carry_the_state():
    torch.manual_seed(0)
    model = firing_model("m1", "audio", hidden_sizes=(32, 32), feature_size=16)
    x = (torch.rand(2, 10, 700) < 0.1).float()
    eager = EagerM1(model)
    state, counts = None, 0
    for t in range(x.shape[1]):
        out, _, state = eager.step(x[:, t], state)
        counts = counts + out
    assert torch.equal(counts, eager(x)[0]) and counts.sum() > 0


def test_eager_rejects_other_models():
    with pytest.raises(ValueError, match="M1"):
        EagerM1(build_model("m4", "audio", hidden_sizes=(8, 8), feature_size=8))


def test_peak_memory_counts_live_and_freed_tensors():
    def fn():
        a = torch.ones(2**18)  # 1 MiB, freed before the next allocation ...
        del a
        b = torch.ones(2**19)  # ... so the peak is 2 MiB, not 3
        return b.sum()

    assert peak_memory_mb(fn, torch.device("cpu")) == pytest.approx(2.0, abs=0.01)

    def grows():
        return [torch.ones(2**18) for _ in range(3)]

    assert peak_memory_mb(grows, torch.device("cpu")) == pytest.approx(3.0, abs=0.01)


@pytest.mark.parametrize("modality,shape,options", CASES)
def test_fused_streaming_equals_the_whole_sequence(modality, shape, options):
    from sparsespike.bench.streaming import FusedStreamM1

    torch.manual_seed(0)
    model = firing_model("m1", modality, **options)
    x = (torch.rand(shape) < 0.1).float()
    with torch.no_grad():
        whole = model(x).logits
        stepped = FusedStreamM1(model)(x)
    assert whole.sum() > 0 and torch.equal(whole, stepped)


def test_peak_memory_ignores_views_and_in_place_results():
    weight = torch.ones(2**18)

    def fn():
        view = weight.view(512, 512).t()  # no new memory
        weight.add_(0.0)  # in place
        return view

    assert peak_memory_mb(fn, torch.device("cpu")) == 0.0
