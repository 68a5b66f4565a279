"""HGRN modules: the layer against a hand-written HGRN, shapes, gradients to every parameter,
streaming equals the sequence mode, spike input, rising lower bounds, and the reference backend
equal to cpp for the whole module."""

import copy

import pytest
import torch
import torch.nn.functional as F

from sparsespike.nn import HGRN, HGRNStack


def naive_hgrn(layer: HGRN, x: torch.Tensor, lower_bound=None, h0=None) -> torch.Tensor:
    """HGRN (fla's HGRNAttention, real-valued) written out from the layer's parameters."""
    i, f, o = F.linear(x, layer.in_proj.weight, layer.in_proj.bias).chunk(3, dim=-1)
    forget = torch.sigmoid(f) if lower_bound is None else lower_bound + (1 - lower_bound) * torch.sigmoid(f)
    candidate = F.silu(i) * (1 - forget)
    h = torch.zeros_like(candidate[0]) if h0 is None else h0
    states = []
    for t in range(x.shape[0]):
        h = forget[t] * h + candidate[t]
        states.append(h)
    h = torch.stack(states)
    rms = h * torch.rsqrt(h.square().mean(-1, keepdim=True) + layer.out_norm.eps) * layer.out_norm.weight
    return F.linear(rms * F.silu(o), layer.out_proj.weight, layer.out_proj.bias)


@pytest.mark.parametrize("lower_bound", [None, 0.3])
def test_layer_matches_hand_written_hgrn(lower_bound):
    torch.manual_seed(0)
    layer = HGRN(8, expand_ratio=1.5, lower_bound=lower_bound, bias=True, backend="cpp").double()
    x, h0 = torch.randn(6, 2, 8, dtype=torch.float64), torch.randn(2, 12, dtype=torch.float64)
    y, h_final = layer(x, h0, return_state=True)
    expected = naive_hgrn(layer, x, lower_bound, h0)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    assert h_final.shape == (2, 12)


def test_gates_respect_the_lower_bound():
    layer = HGRN(4, lower_bound=0.6)
    f = torch.linspace(-60, 60, 241, dtype=torch.float64)
    g, one_minus = layer.gates(f, 0.6)
    forget = torch.exp(g)
    assert bool((forget >= 0.6 * (1 - 1e-12)).all()) and bool((forget <= 1).all())
    torch.testing.assert_close(forget, 0.6 + 0.4 * torch.sigmoid(f))
    torch.testing.assert_close(one_minus, 1 - forget)
    g0, _ = layer.gates(f.float(), None)  # no bound: logsigmoid, finite where sigmoid underflows
    assert bool(torch.isfinite(g0).all())


@pytest.mark.parametrize("batch_first", [False, True])
def test_shapes(batch_first):
    layer = HGRN(6, expand_ratio=2, batch_first=batch_first)
    x = torch.randn(3, 5, 6) if batch_first else torch.randn(5, 3, 6)  # B=3, T=5
    y, state = layer(x, return_state=True)
    assert y.shape == x.shape and state.shape == (3, 12)
    stack = HGRNStack(6, 3, expand_ratio=2, batch_first=batch_first)
    y, states = stack(x, return_state=True)
    assert y.shape == x.shape and len(states) == 3 and all(s.shape == (3, 12) for s in states)
    y_t, states = stack.step(torch.randn(3, 6), states)
    assert y_t.shape == (3, 6)
    assert HGRN(6)(torch.randn(5, 6)).shape == (5, 6)  # no batch dimension


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    layer = HGRN(6, lower_bound=0.2, learn_lower_bound=True, bias=True)
    stack = HGRNStack(6, 3)
    for module in (layer, stack):
        module(torch.randn(5, 2, 6)).square().sum().backward()
        for name, p in module.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


@pytest.mark.parametrize("spiking_input", [False, True])
def test_streaming_equals_sequence(spiking_input):
    torch.manual_seed(2)
    x = torch.randn(9, 2, 8, dtype=torch.float64)
    if spiking_input:
        x = (x > 0.8).to(torch.float64)
    for module in (HGRN(8, spiking_input=spiking_input, lower_bound=0.1), HGRNStack(8, 3, spiking_input=spiking_input)):
        module = module.double()
        # the sequence in two halves (the second from the first's state) and one step at a time
        y1, s1 = module(x[:4], return_state=True)
        y2, s2 = module(x[4:], s1, return_state=True)
        states, outputs = None, []
        for t in range(x.shape[0]):
            y_t, states = module.step(x[t], states)
            outputs.append(y_t)
        y, final = module(x, return_state=True)
        torch.testing.assert_close(torch.stack(outputs), y, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(torch.cat([y1, y2]), y, rtol=1e-10, atol=1e-10)
        for a, b, c in zip(*(s if isinstance(s, list) else [s] for s in (states, s2, final))):
            torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10)


def test_spike_input_equals_dense_input():
    torch.manual_seed(3)
    spiking = HGRN(10, spiking_input=True, backend="cpp")
    dense = HGRN(10)
    dense.load_state_dict(spiking.state_dict())
    spikes = torch.rand(7, 3, 10) < 0.2
    torch.testing.assert_close(spiking(spikes), dense(spikes.float()), rtol=1e-5, atol=1e-5)
    stack = HGRNStack(10, 2, spiking_input=True)
    assert stack(spikes).shape == (7, 3, 10)


def test_stack_lower_bounds_rise_with_depth():
    stack = HGRNStack(4, 4)
    bounds = stack.layer_lower_bounds()
    assert bounds[0] is None
    torch.testing.assert_close(torch.stack(bounds[1:]), torch.tensor([0.25, 0.5, 0.75]).unsqueeze(1).expand(3, 4))
    with torch.no_grad():
        stack.lower_bounds.copy_(torch.randn(4, 4) * 3)
    bounds = torch.stack(stack.layer_lower_bounds()[1:])
    # fla's form: softmax over layers, cumsum, minus the first layer's share
    weights = stack.lower_bounds.softmax(0)
    torch.testing.assert_close(bounds, (weights.cumsum(0) - weights[0])[1:])
    assert bool((bounds > 0).all()) and bool((bounds < 1).all()) and bool((bounds.diff(dim=0) > 0).all())
    assert HGRNStack(4, 2, use_lower_bound=False).layer_lower_bounds() == [None, None]


@pytest.mark.parametrize(
    "module_fn",
    [
        lambda: HGRN(12, expand_ratio=2, lower_bound=0.1, learn_lower_bound=True),
        lambda: HGRNStack(12, 2, spiking_input=True),
    ],
    ids=["layer", "stack"],
)
def test_reference_backend_equals_cpp(module_fn):
    torch.manual_seed(4)
    module = module_fn()
    x = (torch.rand(8, 3, 12) < 0.3).float()
    results = []
    for backend in ("reference", "cpp"):
        copy_ = copy.deepcopy(module)
        for m in copy_.modules():
            if hasattr(m, "backend"):
                m.backend = backend
        y, states = copy_(x, return_state=True)
        loss = y.square().sum() + sum(s.sum() for s in (states if isinstance(states, list) else [states]))
        loss.backward()
        results.append((y, {n: p.grad for n, p in copy_.named_parameters()}))
    (y_ref, grads_ref), (y_cpp, grads_cpp) = results
    torch.testing.assert_close(y_cpp, y_ref, rtol=1e-5, atol=1e-5)
    assert grads_ref.keys() == grads_cpp.keys()
    for name in grads_ref:
        scale = max(1.0, grads_ref[name].abs().max().item())
        torch.testing.assert_close(grads_cpp[name], grads_ref[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_bad_arguments():
    with pytest.raises(ValueError, match="learn_lower_bound needs an initial lower_bound"):
        HGRN(4, learn_lower_bound=True)
    with pytest.raises(ValueError, match=r"lower_bound must be in \[0, 1\)"):
        HGRN(4, lower_bound=1.0)
    with pytest.raises(ValueError, match="d_model must be >= 1"):
        HGRN(0)
    with pytest.raises(ValueError, match="n_layers must be >= 1"):
        HGRNStack(4, 0)
    layer = HGRN(4, lower_bound=0.5)
    with pytest.raises(ValueError, match="has its own lower_bound"):
        layer(torch.randn(3, 4), lower_bound=torch.full((4,), 0.2))
    with pytest.raises(ValueError, match=r"x must be \[T, ..., 4\]"):
        layer(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"state must have shape \(2, 4\)"):
        layer(torch.randn(3, 2, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="one state per layer"):
        HGRNStack(4, 2)(torch.randn(3, 4), [None])


@pytest.mark.cuda
def test_cuda_stack_matches_reference():
    torch.manual_seed(5)
    stack = HGRNStack(16, 2).cuda()
    x = torch.randn(12, 3, 16, device="cuda")
    outputs = []
    for backend in ("reference", "triton"):
        for m in stack.modules():
            if hasattr(m, "backend"):
                m.backend = backend
        outputs.append(stack(x))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stack_bounds_that_round_to_one_still_run(dtype):
    # the last layer's bound is a cumulative sum of softmax weights: with the first weight tiny it
    # rounds to 1 (or just above): a forget gate of exactly 1 (g = 0), never above
    stack = HGRNStack(8, 3, dtype=dtype)
    with torch.no_grad():
        stack.lower_bounds[0].fill_(-20.0)
    assert stack.layer_lower_bounds()[-1].max() >= 1.0
    out = stack(torch.randn(5, 2, 8, dtype=dtype))
    assert torch.isfinite(out.float()).all()


def test_layers_take_numpy_sizes_and_float_bounds():
    np = pytest.importorskip("numpy")
    layer = HGRN(np.int64(4))
    assert layer(torch.randn(3, 2, 4), lower_bound=0.5).shape == (3, 2, 4)
