"""The bad-input corpus of the ops and modules: one row per mistake, the exception it gets and a
fragment of the message that names the argument. Every op row runs on every backend that can take
it; nothing may end in a RuntimeError from deep inside torch or the kernels."""

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import sparsespike as ss
from sparsespike import nn as snn

BACKENDS = ["reference", "cpp", "auto", "triton"]
NAN = float("nan")


def _spikes(*shape):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()


def _fake(fn, *tensors):
    with FakeTensorMode() as mode:
        return fn(*(mode.from_tensor(t) for t in tensors))


X, W, B = _spikes(6, 8), torch.randn(4, 8), torch.randn(4)
CUR = torch.randn(5, 3, 4)
S4, CW = _spikes(2, 3, 6, 6), torch.randn(4, 3, 3, 3)
P = torch.randn(16, 8)

# (id, call(backend), exception type, message fragment)
OP_CASES = [
    # layouts and tensors without data
    (
        "spike_linear-sparse-spikes",
        lambda be: ss.spike_linear(X.to_sparse(), W, B, backend=be),
        TypeError,
        "spikes must be a dense",
    ),
    (
        "spike_linear-sparse-weight",
        lambda be: ss.spike_linear(X, W.to_sparse(), B, backend=be),
        TypeError,
        "weight must be a dense",
    ),
    (
        "spike_linear-meta",
        lambda be: ss.spike_linear(X.to("meta"), W.to("meta"), backend=be),
        ValueError,
        "spikes is a meta tensor",
    ),
    (
        "spike_linear-fake",
        lambda be: _fake(lambda x, w: ss.spike_linear(x, w, backend=be), X, W),
        ValueError,
        "spikes is a FakeTensor",
    ),
    (
        "spike_conv2d-sparse",
        lambda be: ss.spike_conv2d(S4.to_sparse(), CW, backend=be),
        TypeError,
        "spikes must be a dense",
    ),
    (
        "spike_conv2d-meta",
        lambda be: ss.spike_conv2d(S4.to("meta"), CW.to("meta"), backend=be),
        ValueError,
        "spikes is a meta tensor",
    ),
    (
        "spike_conv2d-nan-spikes",
        lambda be: ss.spike_conv2d(torch.full_like(S4, NAN), CW, backend=be),
        ValueError,
        "spikes contains NaN",
    ),
    ("lif-sparse", lambda be: ss.lif(CUR.to_sparse(), backend=be), TypeError, "current must be a dense"),
    ("lif-meta", lambda be: ss.lif(CUR.to("meta"), backend=be), ValueError, "current is a meta tensor"),
    ("lif-fake", lambda be: _fake(lambda c: ss.lif(c, backend=be), CUR), ValueError, "current is a FakeTensor"),
    ("hgrn-sparse", lambda be: ss.hgrn_scan(CUR.to_sparse(), -CUR.abs(), backend=be), TypeError, "x must be a dense"),
    (
        "hgrn-meta",
        lambda be: ss.hgrn_scan(CUR.to("meta"), CUR.to("meta"), backend=be),
        ValueError,
        "x is a meta tensor",
    ),
    (
        "hopfield-sparse-query",
        lambda be: ss.modern_hopfield(X.to_sparse(), P, backend=be),
        TypeError,
        "query must be a dense",
    ),
    (
        "hopfield-meta",
        lambda be: ss.modern_hopfield(X.to("meta"), P.to("meta"), backend=be),
        ValueError,
        "query is a meta tensor",
    ),
    (
        "recall-sparse-weight",
        lambda be: ss.spiking_hopfield_recall(torch.eye(8).to_sparse(), X, backend=be),
        TypeError,
        "weight must be a dense",
    ),
    (
        "recall-meta",
        lambda be: ss.spiking_hopfield_recall(torch.eye(8, device="meta"), X.to("meta"), backend=be),
        ValueError,
        "weight is a meta tensor",
    ),
    # values that NaN would carry past a comparison
    ("lif-nan-beta", lambda be: ss.lif(CUR, beta=NAN, backend=be), ValueError, "beta must be a finite number"),
    ("lif-nan-beta-tensor", lambda be: ss.lif(CUR, beta=torch.full((3, 4), NAN), backend=be), ValueError, "beta"),
    (
        "lif-nan-beta-scalar-tensor",
        lambda be: ss.lif(CUR, beta=torch.tensor(NAN), backend=be),
        ValueError,
        "beta must be a finite number",
    ),
    (
        "lif-inf-threshold",
        lambda be: ss.lif(CUR, threshold=float("inf"), backend=be),
        ValueError,
        "threshold must be a finite number > 0",
    ),
    (
        "lif-nan-threshold-tensor",
        lambda be: ss.lif(CUR, threshold=torch.full((3, 4), NAN), backend=be),
        ValueError,
        "threshold",
    ),
    (
        "lif-nan-v0",
        lambda be: ss.lif(CUR, v0=torch.full((3, 4), NAN), backend=be),
        ValueError,
        "v0 contains NaN or Inf",
    ),
    (
        "lif-nan-surrogate-param",
        lambda be: ss.lif(CUR, surrogate_param=NAN, backend=be),
        ValueError,
        "surrogate_param must be a finite number > 0",
    ),
    (
        "lif-negative-surrogate-param",
        lambda be: ss.lif(CUR, surrogate_param=-1.0, backend=be),
        ValueError,
        "surrogate_param",
    ),
    (
        "lif-text-surrogate-param",
        lambda be: ss.lif(CUR, surrogate_param="25", backend=be),
        TypeError,
        "surrogate_param must be a number",
    ),
    (
        "lif-beta-list",
        lambda be: ss.lif(CUR, beta=[0.9] * 4, backend=be),
        TypeError,
        "beta must be a float or a tensor",
    ),
    ("lif-beta-bool", lambda be: ss.lif(CUR, beta=True, backend=be), TypeError, "beta must be a float or a tensor"),
    (
        "lif-v0-other-device",
        lambda be: ss.lif(CUR, v0=torch.zeros(3, 4, device="meta"), backend=be),
        ValueError,
        "v0 is a meta tensor",
    ),
    (
        "hgrn-positive-g",
        lambda be: ss.hgrn_scan(CUR, torch.full_like(CUR, 0.5), backend=be),
        ValueError,
        "g must be <= 0",
    ),
    ("hgrn-nan-g", lambda be: ss.hgrn_scan(CUR, torch.full_like(CUR, NAN), backend=be), ValueError, "g contains NaN"),
    (
        "hopfield-nan-query",
        lambda be: ss.modern_hopfield(torch.full((3, 8), NAN), P, backend=be),
        ValueError,
        "query contains NaN",
    ),
    (
        "hopfield-nan-beta",
        lambda be: ss.modern_hopfield(X, P, beta=NAN, backend=be),
        ValueError,
        "beta must be a finite number",
    ),
    (
        "recall-nan-cue",
        lambda be: ss.spiking_hopfield_recall(torch.eye(8), torch.full((2, 8), NAN), backend=be),
        ValueError,
        "cue must be binary",
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_op_bad_input(case, backend):
    _, call, exc, fragment = case
    with pytest.raises(exc, match=fragment):
        call(backend)


API_CASES = [
    ("hebbian-sparse", lambda: ss.hebbian_weight(torch.ones(3, 10).to_sparse()), TypeError, "patterns must be a dense"),
    ("hebbian-nan", lambda: ss.hebbian_weight(torch.full((3, 10), NAN)), ValueError, "patterns must be binary"),
    (
        "overlap-nan",
        lambda: ss.pattern_overlap(torch.full((3, 10), NAN), torch.ones(3, 10)),
        ValueError,
        "a must be binary",
    ),
    ("overlap-bipolar", lambda: ss.pattern_overlap(torch.ones(10), -torch.ones(10)), ValueError, "b must be binary"),
    # module sizes and hyper-parameters, refused at construction with the argument's name
    ("SpikeLinear-zero-in", lambda: snn.SpikeLinear(0, 4), ValueError, "in_features must be >= 1"),
    ("SpikeLinear-zero-out", lambda: snn.SpikeLinear(4, 0), ValueError, "out_features must be >= 1"),
    ("SpikeLinear-negative", lambda: snn.SpikeLinear(-1, 4), ValueError, "in_features must be >= 1"),
    ("SpikeLinear-float", lambda: snn.SpikeLinear(4.5, 4), TypeError, "in_features must be an int"),
    ("SpikeLinear-bool", lambda: snn.SpikeLinear(True, 4), TypeError, "in_features must be an int"),
    ("SpikeConv2d-zero-in", lambda: snn.SpikeConv2d(0, 4, 3), ValueError, "in_channels must be >= 1"),
    ("SpikeConv2d-zero-out", lambda: snn.SpikeConv2d(2, 0, 3), ValueError, "out_channels must be >= 1"),
    ("SpikeConv2d-zero-kernel", lambda: snn.SpikeConv2d(2, 4, (3, 0)), ValueError, "kernel_size must be >= 1"),
    ("HopfieldMemory-zero-dim", lambda: snn.HopfieldMemory(0), ValueError, "dim must be >= 1"),
    ("HopfieldMemory-zero-patterns", lambda: snn.HopfieldMemory(8, 0), ValueError, "num_patterns must be >= 1"),
    (
        "HopfieldMemory-nan-temperature",
        lambda: snn.HopfieldMemory(8, 4, NAN),
        ValueError,
        "temperature must be a finite number > 0",
    ),
    ("ModernHopfield-zero-query", lambda: snn.ModernHopfield(0), ValueError, "query_size must be >= 1"),
    (
        "ModernHopfield-zero-hidden",
        lambda: snn.ModernHopfield(4, hidden_size=0),
        ValueError,
        "hidden_size must be >= 1",
    ),
    (
        "ModernHopfield-nan-beta",
        lambda: snn.ModernHopfield(4, beta=NAN),
        ValueError,
        "beta must be a finite number > 0",
    ),
    ("HGRN-zero", lambda: snn.HGRN(0), ValueError, "d_model must be >= 1"),
    ("HGRN-bool", lambda: snn.HGRN(True), TypeError, "d_model must be an int"),
    (
        "HGRN-forward-lower-bound-above-1",
        lambda: snn.HGRN(4)(torch.randn(3, 2, 4), lower_bound=torch.tensor(1.5)),
        ValueError,
        r"lower_bound passed to forward must be in \[0, 1\]",
    ),
    (
        "HGRN-forward-lower-bound-nan",
        lambda: snn.HGRN(4)(torch.randn(3, 2, 4), lower_bound=torch.tensor(NAN)),
        ValueError,
        "lower_bound passed to forward",
    ),
    (
        "HGRN-forward-lower-bound-float",
        lambda: snn.HGRN(4)(torch.randn(3, 2, 4), lower_bound=-0.5),
        ValueError,
        "lower_bound passed to forward",
    ),
    ("HGRNStack-zero-layers", lambda: snn.HGRNStack(4, 0), ValueError, "n_layers must be >= 1"),
    ("SpikingHopfield-zero", lambda: snn.SpikingHopfield(0), ValueError, "n_neurons must be >= 1"),
    ("LIF-nan-beta", lambda: snn.LIF(beta=NAN), ValueError, "beta must be finite"),
    ("LIF-nan-beta-tensor", lambda: snn.LIF(beta=torch.tensor([0.9, NAN])), ValueError, "beta must be finite"),
    ("LIF-zero-threshold", lambda: snn.LIF(threshold=0.0), ValueError, "threshold must be finite and > 0"),
    ("LIF-nan-surrogate-param", lambda: snn.LIF(surrogate_param=NAN), ValueError, "surrogate_param must be a finite"),
    ("Leaky-nan-beta", lambda: snn.Leaky(beta=NAN), ValueError, "beta must be finite"),
    ("Leaky-text-beta", lambda: snn.Leaky(beta="0.9"), TypeError, "beta must be a float or a tensor"),
    ("Leaky-inf-threshold", lambda: snn.Leaky(0.9, threshold=float("inf")), ValueError, "threshold must be finite"),
    ("LIFNode-nan-tau", lambda: snn.LIFNode(tau=NAN), ValueError, "tau must be a number > 1"),
    ("SupConLoss-nan-temperature", lambda: snn.SupConLoss(temperature=NAN), ValueError, "temperature must be finite"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(case):
    _, call, exc, fragment = case
    with pytest.raises(exc, match=fragment):
        call()


def test_silent_inputs_skip_their_weight_rows():
    # the documented event-driven contract: NaN in the weight row of an input that never fires does
    # not reach the output on the event-driven path (F.linear would give NaN everywhere)
    spikes = torch.zeros(3, 8)
    spikes[:, 1] = 1.0
    weight = torch.randn(4, 8)
    weight[:, 5] = NAN
    out = ss.spike_linear(spikes, weight, backend="cpp")
    torch.testing.assert_close(out, weight[:, 1].expand(3, 4))
    assert torch.isnan(ss.spike_linear(spikes, weight, backend="reference")).all()
