"""The step-by-step eager baseline of the model benchmarks computes what the fused M1..M5
compute, and the benchmarks' peak-memory tracker counts what was allocated."""

import pytest
import torch
import torch.nn.functional as F
from spike_data import firing_model

from sparsespike.bench.eager import EagerM1, EagerMemoryModel, eager_model
from sparsespike.bench.models import peak_memory_mb
from sparsespike.models import build_model
from sparsespike.ops.supcon_loss import supcon_loss

CASES = [
    ("audio", (3, 12, 700), {"hidden_sizes": (48, 48), "feature_size": 24}),
    ("visual", (2, 6, 2, 34, 34), {"hidden_sizes": (3, 4), "feature_size": 16}),
]


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


@pytest.mark.parametrize("name", ["m3", "m4", "m5"])
@pytest.mark.parametrize("modality,shape,options", CASES)
def test_eager_memory_models_equal_the_fused_model(name, modality, shape, options):
    torch.manual_seed(0)
    model = firing_model(name, modality, torch.float64, **options)
    with torch.no_grad():
        model.memory_gate.fill_(0.5)  # it starts at 0, which would hide the memory branch
    x = (torch.rand(shape) < 0.1).double()
    labels = torch.arange(shape[0]) % 2
    eager = eager_model(model)
    assert isinstance(eager, EagerMemoryModel)
    out = model(x)
    counts, features = eager(x)
    assert out.logits.sum() > 0 and not torch.allclose(out.features, out.rates)  # the memory shows
    # the logits are spike counts: equal unless a membrane lands within rounding of the threshold;
    # the features are not bit for bit (the fused scores are event-driven sums, the C++ scan's
    # exp and the time-mean's summation order differ from the loop's), so to 1e-10 (seen: 1e-15)
    assert torch.equal(out.logits, counts)
    torch.testing.assert_close(features, out.features, rtol=1e-10, atol=1e-10)

    def loss(logits, features):  # the bench's train step: CE plus the SCL term on the features
        return F.cross_entropy(logits, labels) + 0.1 * supcon_loss(features, labels)

    params = list(model.parameters())
    fused = torch.autograd.grad(loss(out.logits, out.features), params)
    stepped = torch.autograd.grad(loss(counts, features), params)
    for (pname, _), a, b in zip(model.named_parameters(), fused, stepped):
        assert a.abs().max() > 0, pname  # every branch takes part
        # relative to the tensor's largest entry (seen: below 1e-11)
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9 * float(a.abs().max()), msg=pname)


def test_eager_model_picks_the_baseline_and_rejects_what_it_cannot_mirror():
    assert isinstance(eager_model(build_model("m2", "audio", hidden_sizes=(8, 8), feature_size=8)), EagerM1)
    for name in ("m3", "m4", "m5"):
        with pytest.raises(ValueError, match="study"):
            eager_model(build_model(name, "audio", hidden_sizes=(8, 8), feature_size=8, memory="study"))
    joint = build_model("joint", None, visual_hidden_sizes=(2, 2), audio_hidden_sizes=(8, 8), feature_size=8)
    with pytest.raises(ValueError, match="joint"):
        eager_model(joint)
    with pytest.raises(ValueError, match="M1"):
        EagerM1(build_model("m3", "audio", hidden_sizes=(8, 8), feature_size=8))


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
