"""modern_hopfield and the Hopfield modules: every backend against the reference.

float32 comparisons: rtol 1e-5, atol 1e-5 (softmax outputs and their products are O(1));
gradients in float64 with gradcheck on the reference and the cpp path.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsespike
from sparsespike import modern_hopfield, modern_hopfield_reference
from sparsespike.nn import HopfieldMemory, ModernHopfield

BACKENDS = ["cpp", "auto", "triton"]


def grads_of(fn, tensors, weight):
    tensors = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*tensors)
    return out, torch.autograd.grad((out * weight).sum(), tensors)


@settings(max_examples=12, deadline=None)
@given(
    n_q=st.integers(1, 40),
    n_k=st.integers(1, 40),
    dim=st.integers(1, 40),
    dim_v=st.integers(1, 24),
    beta=st.floats(0.05, 3.0),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(BACKENDS),
)
def test_matches_reference_float_queries(n_q, n_k, dim, dim_v, beta, seed, backend):
    g = torch.Generator().manual_seed(seed)
    q, p, v = (torch.randn(shape, generator=g) for shape in ((n_q, dim), (n_k, dim), (n_k, dim_v)))
    weight = torch.randn(n_q, dim_v, generator=g)
    out, grads = grads_of(lambda a, b, c: modern_hopfield(a, b, beta, c, backend=backend), (q, p, v), weight)
    ref, ref_grads = grads_of(lambda a, b, c: modern_hopfield_reference(a, b, beta, c), (q, p, v), weight)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for name, got, want in zip(("query", "patterns", "values"), grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize(
    "n_q, n_k, dim, dim_v",
    [(37, 150, 70, 130), (5, 1100, 8, 3)],  # several blocks of queries, patterns, features, values
)
def test_triton_streams_blocks_of_patterns(n_q, n_k, dim, dim_v):
    """The online softmax across blocks of patterns, with scores that grow from block to block
    (each later block's maximum rescales the accumulator) and more patterns than one block."""
    g = torch.Generator().manual_seed(n_k)
    q, v = torch.randn(n_q, dim, generator=g), torch.randn(n_k, dim_v, generator=g)
    p = torch.randn(n_k, dim, generator=g) * torch.linspace(0.1, 3.0, n_k)[:, None]
    weight = torch.randn(n_q, dim_v, generator=g)
    out, grads = grads_of(lambda a, b, c: modern_hopfield(a, b, 0.9, c, backend="triton"), (q, p, v), weight)
    ref, ref_grads = grads_of(lambda a, b, c: modern_hopfield_reference(a, b, 0.9, c), (q, p, v), weight)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for name, got, want in zip(("query", "patterns", "values"), grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float32])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("density", [0.0, 0.03, 0.3, 1.0])
def test_spike_queries_event_driven(backend, dtype, density):
    g = torch.Generator().manual_seed(3)
    spikes = torch.rand(2, 25, 48, generator=g) < density
    query = spikes.to(dtype)
    patterns = torch.randn(20, 48, generator=g, requires_grad=True)
    out = modern_hopfield(query, patterns, 0.4, backend=backend)
    ref = modern_hopfield_reference(spikes.float(), patterns, 0.4)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    (grad,) = torch.autograd.grad(out.square().sum(), patterns)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), patterns)
    # dense queries make gradients of ~200 (50 equal rows summed): fp32 rounding of the reference
    # itself is ~1e-4 there (measured against float64), so atol scales with the magnitude
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=max(1e-4, 2e-6 * ref_grad.abs().max().item()))


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_multiple_steps_and_leading_dims(backend):
    g = torch.Generator().manual_seed(4)
    q = torch.randn(3, 5, 16, generator=g)
    p = torch.randn(12, 16, generator=g)
    out = modern_hopfield(q, p, 0.8, steps=3, backend=backend)
    xi = q.reshape(-1, 16)
    for _ in range(3):  # the update written out
        xi = torch.softmax(0.8 * xi @ p.t(), -1) @ p
    assert out.shape == (3, 5, 16)
    torch.testing.assert_close(out, xi.reshape(3, 5, 16), rtol=1e-5, atol=1e-5)


def test_default_beta_is_inverse_sqrt_dim():
    q, p = torch.randn(4, 25), torch.randn(6, 25)
    torch.testing.assert_close(modern_hopfield(q, p), modern_hopfield_reference(q, p, 1 / 5))


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_gradcheck_float64(backend):
    g = torch.Generator().manual_seed(5)
    tensors = [
        torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True) for shape in ((6, 5), (4, 5), (4, 3))
    ]
    assert torch.autograd.gradcheck(lambda q, p, v: modern_hopfield(q, p, 0.7, v, backend=backend), tensors)
    assert torch.autograd.gradcheck(lambda q, p: modern_hopfield(q, p, 0.7, steps=2, backend=backend), tensors[:2])


def test_triton_custom_op_opcheck_and_cpp_compile():
    g = torch.Generator().manual_seed(6)
    q, p, v = (torch.randn(shape, generator=g, requires_grad=True) for shape in ((20, 16), (17, 16), (17, 18)))
    torch.library.opcheck(torch.ops.sparsespike.modern_hopfield_step.default, (q, p, v, 0.5, "triton"))

    @torch.compile(fullgraph=True)
    def loss_fn(query, patterns):
        return modern_hopfield(query, patterns, 0.5, backend="cpp").square().sum()

    loss = loss_fn(q, p)
    ref = modern_hopfield_reference(q, p, 0.5).square().sum()
    torch.testing.assert_close(loss, ref)
    got = torch.autograd.grad(loss, (q, p))
    want = torch.autograd.grad(ref, (q, p))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS + ["reference"])
def test_synops_count_first_step_events(backend):
    spikes = torch.zeros(4, 30)
    spikes[0, :3] = 1
    spikes[2, 7] = 1
    with sparsespike.count_synops() as counter:
        modern_hopfield(spikes, torch.randn(11, 30), steps=2, backend=backend)
    assert int(counter.total()) == 4 * 11  # four spikes, each reaching 11 stored patterns


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_bad_input(backend):
    q, p = torch.randn(4, 8), torch.randn(5, 8)
    call = lambda *a, **k: modern_hopfield(*a, backend=backend, **k)  # noqa: E731
    with pytest.raises(ValueError, match="query must be"):
        call(torch.randn(4, 7), p)
    with pytest.raises(ValueError, match="patterns must be 2-D"):
        call(q, torch.randn(5, 8, 1))
    with pytest.raises(TypeError, match="patterns must be a floating-point"):
        call(q, p.long())
    with pytest.raises(TypeError, match="query must be bool, uint8 or the patterns' dtype"):
        call(q.double(), p)
    with pytest.raises(ValueError, match="values must be 2-D"):
        call(q, p, values=torch.randn(4, 3))
    with pytest.raises(TypeError, match="values must have the patterns' dtype"):
        call(q, p, values=torch.randn(5, 3).double())
    with pytest.raises(ValueError, match="steps must be an integer"):
        call(q, p, steps=0)
    with pytest.raises(ValueError, match="values must have width"):
        call(q, p, values=torch.randn(5, 3), steps=2)
    with pytest.raises(ValueError, match="beta must be"):
        call(q, p, beta=-1.0)
    with pytest.raises(ValueError, match="has zero elements"):
        call(torch.randn(0, 8), p)
    bad = q.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        call(bad, p)
    bad_p = p.clone()
    bad_p[0, 0] = float("inf")
    with pytest.raises(ValueError, match="patterns contains NaN or Inf"):
        call(q, bad_p)
    with pytest.raises(ValueError, match="is a meta tensor"):
        call(q, torch.randn(5, 8, device="meta"))


def test_triton_limits_are_errors_not_silent():
    q = torch.randn(3, 8, dtype=torch.float64)
    with pytest.raises(TypeError, match="backend='triton' supports float32"):
        modern_hopfield(q, torch.randn(5, 8, dtype=torch.float64), backend="triton")
    with pytest.raises(ValueError, match="patterns has zero elements"):
        modern_hopfield(torch.randn(3, 0), torch.randn(5, 0))  # not a ZeroDivisionError from the default beta


# --------------------------------------------------------------------------- modules


def test_hopfield_memory_is_the_study_formula():
    torch.manual_seed(0)
    layer = HopfieldMemory(dim=32, num_patterns=16, temperature=0.1)
    x = (torch.rand(5, 32) < 0.2).float()
    q = torch.nn.functional.normalize(x, dim=-1)
    m = torch.nn.functional.normalize(layer.patterns, dim=-1)
    attention = torch.softmax(q @ m.t() / math.sqrt(32) / 0.1, dim=-1)
    expected = layer.norm(attention @ m + x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(x.bool()), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["cpp", "auto", "triton"])
def test_modules_equal_reference_backend(backend):
    torch.manual_seed(1)
    x = (torch.rand(3, 6, 40) < 0.05).float()
    for make in (
        lambda b: HopfieldMemory(40, 24, backend=b),
        lambda b: ModernHopfield(
            40,
            pattern_size=24,
            hidden_size=32,
            value_size=20,
            output_size=7,
            num_patterns=18,
            update_steps=2,
            normalize=True,
            backend=b,
        ),
    ):
        torch.manual_seed(2)
        ours = make(backend)
        torch.manual_seed(2)
        ref = make("reference")
        out, out_ref = ours(x), ref(x)
        torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
        out.square().sum().backward()
        out_ref.square().sum().backward()
        for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_hopfield_retrieves_a_stored_pattern_from_a_corrupted_cue():
    # Ramsauer et al.: with well-separated patterns and a large beta, one update retrieves the
    # stored pattern nearest to the cue
    g = torch.Generator().manual_seed(7)
    stored = torch.sign(torch.randn(30, 64, generator=g))
    cue = stored[:10].clone()
    flips = torch.rand(10, 64, generator=g) < 0.15
    cue[flips] *= -1
    layer = ModernHopfield(64, beta=1.0)
    out = layer(cue, stored)
    assert torch.equal(torch.sign(out), stored[:10])


def test_hopfield_layer_arguments():
    with pytest.raises(ValueError, match="pattern_size .* must equal query_size"):
        ModernHopfield(8, pattern_size=6)
    with pytest.raises(ValueError, match="update_steps"):
        ModernHopfield(8, update_steps=0)
    with pytest.raises(ValueError, match="stored patterns are required"):
        ModernHopfield(8)(torch.randn(2, 8))
    with pytest.raises(ValueError, match="do not pass stored"):
        ModernHopfield(8, num_patterns=4)(torch.randn(2, 8), torch.randn(4, 8))
    with pytest.raises(ValueError, match="temperature"):
        HopfieldMemory(8, 4, temperature=0.0)
    layer = HopfieldMemory(16, 8)
    assert set(layer.state_dict()) == {"patterns", "norm.weight", "norm.bias"}


def test_silent_query_has_a_finite_gradient():
    # a time step without spikes is an all-zero query: F.normalize would give it a 1e12 gradient
    from sparsespike.nn.hopfield import unit_rows

    x = torch.zeros(3, 8, dtype=torch.float64)
    x[0, 2] = 1.0
    x[1, :] = torch.arange(8.0)
    x.requires_grad_(True)
    out = unit_rows(x)
    assert torch.equal(out[2], torch.zeros(8, dtype=torch.float64))
    assert torch.allclose(out[:2], torch.nn.functional.normalize(x[:2].detach(), dim=-1))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() <= 1.0
    memory = HopfieldMemory(dim=8, num_patterns=4).double()
    query = x.detach().requires_grad_(True)
    (memory(query) * torch.randn(3, 8, dtype=torch.float64)).sum().backward()
    assert query.grad[2].abs().max() < 1e3  # F.normalize: about 1e12
    assert all(torch.isfinite(p.grad).all() for p in memory.parameters())
