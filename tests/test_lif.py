"""lif: every backend against the reference loop, forward and backward, for every option.

Spikes must be identical (the kernels round like the reference, op by op); membranes and
gradients agree to 1e-5 (fp32) / 1e-10 (fp64) relative and absolute. With return_trace the
cpp backward reads the trace; without it, it recomputes the trace from the current: both run.
"""

import itertools

import pytest
import torch

from sparsespike import lif, lif_reference
from sparsespike.ops.lif_reference import CONVENTIONS, RESETS, SURROGATES

OPTIONS = list(itertools.product(CONVENTIONS, RESETS, [True, False], SURROGATES))


def make_case(shape, dtype, seed, per_neuron=True):
    g = torch.Generator().manual_seed(seed)
    current = (torch.randn(shape, generator=g, dtype=torch.float64) * 1.5).to(dtype)
    neurons = shape[-1]
    if per_neuron:
        beta = torch.rand(neurons, generator=g, dtype=torch.float64).to(dtype)
        threshold = (torch.rand(neurons, generator=g, dtype=torch.float64) + 0.5).to(dtype)
    else:
        beta = torch.tensor(0.9, dtype=dtype)
        threshold = torch.tensor(1.0, dtype=dtype)
    v0 = torch.randn(shape[1:], generator=g, dtype=torch.float64).to(dtype)
    return current, beta, threshold, v0


def run(backend, case, options, grads_seed=1, return_trace=True, grad_band=None):
    convention, reset, detach, surrogate = options
    current, beta, threshold, v0 = (t.detach().clone().requires_grad_() for t in case)
    out = lif(
        current,
        beta,
        threshold,
        v0,
        reset=reset,
        detach_reset=detach,
        surrogate=surrogate,
        convention=convention,
        return_trace=return_trace,
        backend=backend,
        grad_band=grad_band,
    )
    g = torch.Generator().manual_seed(grads_seed)
    outputs = out if return_trace else out[:2]
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype) for t in outputs]
    loss = sum((o * w).sum() for o, w in zip(outputs, weights))
    grads = torch.autograd.grad(loss, (current, beta, threshold, v0))
    return out, grads


def assert_same(actual, expected, dtype):
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    (out, grads), (ref_out, ref_grads) = actual, expected
    assert torch.equal(out.spikes, ref_out.spikes)
    torch.testing.assert_close(out.membrane, ref_out.membrane, rtol=tol, atol=tol)
    if out.trace is not None or ref_out.trace is not None:
        torch.testing.assert_close(out.trace, ref_out.trace, rtol=tol, atol=tol)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("return_trace", [True, False], ids=["trace", "recompute"])
@pytest.mark.parametrize("backend", ["cpp", "triton", "auto"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(str(x) for x in o))
def test_matches_reference_every_option(backend, options, return_trace):
    case = make_case((6, 2, 5), torch.float64, 0)
    expected = run("reference", case, options, return_trace=return_trace)
    assert_same(run(backend, case, options, return_trace=return_trace), expected, torch.float64)


# (700, 3, 40): a long sequence, so the recomputing backward uses narrower neuron blocks
@pytest.mark.parametrize("return_trace", [True, False], ids=["trace", "recompute"])
@pytest.mark.parametrize("backend", ["cpp", "triton"])
@pytest.mark.parametrize("shape", [(1, 1), (30, 4, 33), (3, 2, 2, 300), (700, 3, 40)])
def test_matches_reference_float32_shapes(backend, shape, return_trace):
    if backend == "triton" and shape[0] > 100:
        pytest.skip("long sequences are slow under the Triton interpreter")
    case = make_case(shape, torch.float32, 1)
    options = ("snntorch", "subtract", True, "fast_sigmoid")
    expected = run("reference", case, options, return_trace=return_trace)
    assert_same(run(backend, case, options, return_trace=return_trace), expected, torch.float32)


@pytest.mark.parametrize("return_trace", [True, False], ids=["trace", "recompute"])
def test_cpp_results_do_not_depend_on_thread_count(return_trace):
    case = make_case((700, 4, 150), torch.float32, 9)  # several neuron blocks in both backward layouts
    options = ("snntorch", "subtract", True, "fast_sigmoid")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run("cpp", case, options, return_trace=return_trace)
        torch.set_num_threads(2)
        two = run("cpp", case, options, return_trace=return_trace)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip((*one[0][:2], *one[1]), (*two[0][:2], *two[1])):
        assert torch.equal(a, b)


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_gradient_broadcast_over_time(backend, convention):
    # spikes.sum() hands backward a stride-0 expansion, which the cpp kernel reads as one row
    current, beta, threshold, v0 = (t.requires_grad_() for t in make_case((7, 2, 6), torch.float64, 5))
    out = lif(current, beta, threshold, v0, convention=convention, backend=backend)
    grads = torch.autograd.grad(out.spikes.sum() + 3 * out.membrane.sum(), (current, beta, threshold, v0))
    ref = lif(current, beta, threshold, v0, convention=convention, backend="reference")
    ref_grads = torch.autograd.grad(ref.spikes.sum() + 3 * ref.membrane.sum(), (current, beta, threshold, v0))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_scalar_parameters_and_defaults(backend):
    current = torch.randn(20, 3, 4)
    out = lif(current, backend=backend)  # beta 0.9, threshold 1.0, v0 = 0
    spikes, membrane, trace = lif_reference(current, torch.tensor(0.9), torch.tensor(1.0), torch.zeros(3, 4))
    assert torch.equal(out.spikes, spikes)
    torch.testing.assert_close(out.membrane, membrane)
    assert out.trace is None


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_parameter_gradients_reduce_over_shared_neurons(backend):
    current, _, _, _ = make_case((8, 3, 4), torch.float64, 2)
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    threshold = torch.full((4,), 0.7, dtype=torch.float64, requires_grad=True)
    out = lif(current, beta, threshold, backend=backend, return_trace=True)
    (out.trace.sum() + out.spikes.sum()).backward()
    ref_beta = beta.detach().clone().requires_grad_()
    ref_th = threshold.detach().clone().requires_grad_()
    s, _, tr = lif_reference(current, ref_beta, ref_th, torch.zeros(3, 4, dtype=torch.float64))
    (tr.sum() + s.sum()).backward()
    assert beta.grad.shape == () and threshold.grad.shape == (4,)
    torch.testing.assert_close(beta.grad, ref_beta.grad)
    torch.testing.assert_close(threshold.grad, ref_th.grad)


def test_beta_is_clamped_to_unit_interval():
    current = torch.randn(5, 6, dtype=torch.float64)
    beta = torch.tensor([1.5, -0.2, 0.5, 1.0, 0.0, 0.3], dtype=torch.float64, requires_grad=True)
    out = lif(current, beta, backend="cpp", return_trace=True)
    ref = lif(current, beta.detach().clamp(0, 1), backend="reference", return_trace=True)
    torch.testing.assert_close(out.trace, ref.trace)
    out.trace.sum().backward()
    assert beta.grad[0] == 0 and beta.grad[1] == 0 and beta.grad[2] != 0


@pytest.mark.parametrize("backend", ["reference", "cpp"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_gradcheck_float64_membrane_path(backend, reset, convention):
    # The spike's own gradient is a surrogate by design; through the membrane (reset detached)
    # the function is smooth away from the threshold, so finite differences must agree.
    current, beta, threshold, v0 = make_case((5, 2, 3), torch.float64, 3)
    params = [t.requires_grad_() for t in (current, beta, threshold, v0)]

    def membranes(x, b, th, v):
        out = lif(x, b, th, v, reset=reset, convention=convention, return_trace=True, backend=backend)
        return out.trace, out.membrane

    assert torch.autograd.gradcheck(membranes, params, eps=1e-7, atol=1e-6)


def _saved_sequences(out, current):
    node = out.spikes.grad_fn.next_functions[0][0]  # the lif node under the reshape
    return [t for t in node.saved_tensors if t is not None and t.numel() >= current.numel()]


def test_saved_for_backward_is_4_bytes_per_element():
    current = torch.randn(10, 2, 8, requires_grad=True)
    # cpp: the input itself, nothing new (the backward recomputes the trace from it)
    for convention in CONVENTIONS:
        stored = _saved_sequences(lif(current, convention=convention, backend="cpp"), current)
        assert len(stored) == 1 and stored[0].data_ptr() == current.data_ptr()
    # triton: the trace; spikingjelly with decay_input: its beta gradient reads the current too
    stored = _saved_sequences(lif(current, backend="triton"), current)
    assert len(stored) == 1 and stored[0].dtype == torch.float32 and stored[0].data_ptr() != current.data_ptr()
    assert len(_saved_sequences(lif(current, convention="spikingjelly", backend="triton"), current)) == 2


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_bad_input(backend):
    current = torch.randn(4, 3)
    with pytest.raises(ValueError, match="threshold must be .*> 0"):
        lif(current, threshold=0.0, backend=backend)
    with pytest.raises(ValueError, match="threshold must be .*> 0"):
        lif(current, threshold=torch.tensor([1.0, -1.0, 1.0]), backend=backend)
    with pytest.raises(ValueError, match="beta of shape"):
        lif(current, beta=torch.rand(5), backend=backend)
    with pytest.raises(ValueError, match="T = 0"):
        lif(torch.zeros(0, 3), backend=backend)
    with pytest.raises(ValueError, match="v0 must have the neuron shape"):
        lif(current, v0=torch.zeros(4), backend=backend)
    with pytest.raises(ValueError, match="reset must be one of"):
        lif(current, reset="hard", backend=backend)
    with pytest.raises(ValueError, match="surrogate must be one of"):
        lif(current, surrogate="erf", backend=backend)
    with pytest.raises(TypeError, match="current must be a floating-point tensor"):
        lif(torch.zeros(4, 3, dtype=torch.int64), backend=backend)
    bad = current.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="current contains NaN or Inf"):
        lif(bad, backend=backend)


def test_opcheck_and_compile():
    current, beta, threshold, v0 = (t.float().requires_grad_() for t in make_case((4, 2, 3), torch.float64, 4))
    for backend in ("cpp", "triton"):
        for keep_trace in (True, False):  # without the trace the cpp backward recomputes it
            torch.library.opcheck(
                torch.ops.sparsespike.lif.default,
                (
                    current.reshape(4, 6),
                    beta.repeat(2),
                    threshold.repeat(2),
                    v0.reshape(6),
                    0,
                    0,
                    True,
                    0,
                    25.0,
                    0.1 if keep_trace else float("inf"),  # grad_band: a band, or none
                    True,
                    keep_trace,
                    keep_trace,  # keep_band, with the band above
                    backend,
                ),
            )

    for return_trace in (True, False):

        @torch.compile(fullgraph=True)
        def loss_fn(x, b):
            out = lif(x, b, 1.0, backend="cpp", return_trace=return_trace)
            return out.spikes.sum() + out.membrane.square().sum() + (out.trace.square().sum() if return_trace else 0)

        x, b = (t.detach().clone().requires_grad_() for t in (current, beta))
        loss = loss_fn(x, b)
        loss.backward()
        ref_x, ref_b = (t.detach().clone().requires_grad_() for t in (current, beta))
        ref = lif(ref_x, ref_b, 1.0, backend="reference", return_trace=True)
        ref_loss = ref.spikes.sum() + ref.membrane.square().sum() + (ref.trace.square().sum() if return_trace else 0)
        ref_loss.backward()
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(x.grad, ref_x.grad)
        torch.testing.assert_close(b.grad, ref_b.grad)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_inference_without_trace_matches(convention):
    current = torch.randn(9, 3, 5)
    with torch.no_grad():
        fast = lif(current, 0.8, 0.7, convention=convention, backend="cpp")  # trace never written
        full = lif(current, 0.8, 0.7, convention=convention, backend="cpp", return_trace=True)
    ref = lif(current, 0.8, 0.7, convention=convention, backend="reference", return_trace=True)
    assert fast.trace is None
    assert torch.equal(fast.spikes, ref.spikes) and torch.equal(full.spikes, ref.spikes)
    torch.testing.assert_close(fast.membrane, ref.membrane)
    torch.testing.assert_close(full.trace, ref.trace)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_scalar_tensor_threshold_checked(backend):
    # a scalar tensor that needs no gradient is read as a number (the cached constant vector)
    with pytest.raises(ValueError, match="threshold must be .*> 0"):
        lif(torch.randn(4, 3), threshold=torch.tensor(0.0), backend=backend)
    with pytest.raises(ValueError, match="threshold must be .*> 0"):
        lif(torch.randn(4, 3), threshold=torch.tensor(float("nan")), backend=backend)


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_no_grad_fast_path_equals_the_graph_path(backend):
    # without a graph to record, the kernels are called without autograd.Function: same results
    current, beta, threshold, v0 = make_case((6, 2, 5), torch.float32, 4)
    with_graph = lif(current.requires_grad_(), beta, threshold, v0, backend=backend, return_trace=True)
    with torch.no_grad():
        without = lif(current, beta, threshold, v0, backend=backend, return_trace=True)
    assert without.spikes.grad_fn is None and with_graph.spikes.grad_fn is not None
    for a, b in zip(with_graph, without):
        assert torch.equal(a.detach(), b)


def test_scalar_buffers_edited_in_place_are_seen():
    # scalar beta/threshold become cached constant vectors keyed by value: an edit, through the
    # version counter or through .data, must change the result
    from sparsespike.nn import LIF

    neuron = LIF(beta=0.9, threshold=1.0, backend="cpp")
    current = torch.full((5, 2, 3), 0.6)
    with torch.no_grad():
        first = neuron(current)
        neuron.beta.fill_(0.0)
        second = neuron(current)
        neuron.threshold.data.fill_(0.5)
        third = neuron(current)
    expected = [
        lif_reference(current.reshape(5, -1), torch.full((6,), b), torch.full((6,), t), torch.zeros(6))[0].reshape(
            current.shape
        )
        for b, t in ((0.9, 1.0), (0.0, 1.0), (0.0, 0.5))
    ]
    for got, want in zip((first, second, third), expected):
        assert torch.equal(got, want)
    assert not torch.equal(first, second) and not torch.equal(second, third)


def test_compile_with_a_scalar_tensor_threshold():
    # eager reads a gradient-free scalar buffer as a number; a traced graph must not (.item())
    current = torch.randn(4, 2, 3, requires_grad=True)
    threshold = torch.tensor(0.7)

    @torch.compile(fullgraph=True)
    def loss_fn(x):
        return lif(x, 0.8, threshold, backend="cpp").spikes.sum()

    eager = lif(current, 0.8, threshold, backend="cpp").spikes.sum()
    torch.testing.assert_close(loss_fn(current), eager)


# --------------------------------------------------------------------------- gradient band


@pytest.mark.parametrize("return_trace", [True, False], ids=["trace", "recompute"])
@pytest.mark.parametrize("backend", ["cpp", "triton", "auto"])
@pytest.mark.parametrize("band", [0.05, 0.4])
@pytest.mark.parametrize(
    "options",
    [o for o in OPTIONS if o[1] != "none" and o[3] in ("fast_sigmoid", "triangle")],
    ids=lambda o: "-".join(str(x) for x in o),
)
def test_grad_band_matches_reference(backend, options, band, return_trace):
    """A band truncates the surrogate on every backend as in the reference (forward unchanged)."""
    case = make_case((6, 2, 5), torch.float64, 3)
    expected = run("reference", case, options, return_trace=return_trace, grad_band=band)
    got = run(backend, case, options, return_trace=return_trace, grad_band=band)
    assert_same(got, expected, torch.float64)
    no_band = run("reference", case, options, return_trace=return_trace)
    assert torch.equal(got[0].spikes, no_band[0].spikes)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_grad_band_zero_outside_and_exact_inside(backend, surrogate):
    """One step from rest: d spikes / d current is the surrogate at u = current - threshold,
    zero where |u| >= band, and the unbanded surrogate bit for bit inside the band."""
    u = torch.linspace(-1.0, 1.0, 201, dtype=torch.float64)
    band = 0.3

    def grad(grad_band):
        current = (u + 1.0).reshape(1, -1).requires_grad_()
        out = lif(current, 0.9, 1.0, surrogate=surrogate, grad_band=grad_band, backend=backend)
        return torch.autograd.grad(out.spikes.sum(), current)[0][0]

    banded, full = grad(band), grad(None)
    inside = ((u + 1.0) - 1.0).abs() < band  # u as the kernels see it
    assert torch.equal(banded[~inside], torch.zeros_like(banded[~inside]))
    assert torch.equal(banded[inside], full[inside])
    assert bool((full[~inside] != 0).any()) or surrogate == "triangle"  # the band removed something
    assert bool((banded[inside] != 0).all()) or surrogate == "triangle"
    assert torch.equal(grad(1e6), full)  # a band wider than every |u|: no band


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf"), "wide"])
def test_grad_band_must_be_finite_and_positive(bad):
    with pytest.raises((ValueError, TypeError), match="grad_band"):
        lif(torch.randn(3, 4), grad_band=bad)


def test_neuron_modules_take_a_grad_band():
    from sparsespike.nn import LIF, Leaky, LIFNode

    assert not LIF().compact_support
    assert LIF(surrogate="triangle").compact_support
    banded = LIF(grad_band=0.2)
    assert banded.compact_support and "grad_band=0.2" in repr(banded)
    x = torch.randn(5, 3, 8, requires_grad=True)
    (g,) = torch.autograd.grad(banded(x).sum(), x)
    (want,) = torch.autograd.grad(lif(x, 0.9, 1.0, grad_band=0.2, backend="reference").spikes.sum(), x)
    torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-5)
    assert Leaky(0.9, grad_band=0.1).grad_band == 0.1
    assert LIFNode(grad_band=0.1).cell.grad_band == 0.1
    with pytest.raises(ValueError, match="grad_band"):
        LIF(grad_band=-1.0)
    with pytest.raises(ValueError, match="grad_band needs a fused surrogate"):
        Leaky(0.9, spike_grad=lambda u: (u > 0).float(), grad_band=0.1)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("surrogate, grad_band, width", [("fast_sigmoid", 0.2, 0.2), ("triangle", None, 0.5)])
def test_return_band_is_where_the_surrogate_is_nonzero(backend, convention, surrogate, grad_band, width):
    """The band-active set the forward writes: |trace - threshold| < width, exactly, on every
    backend; where it is False the spikes' gradient reaches nothing (zero surrogate)."""
    current, beta, threshold, v0 = make_case((7, 3, 5), torch.float32, 5)
    kwargs = dict(surrogate=surrogate, grad_band=grad_band, convention=convention)
    if surrogate == "triangle":
        kwargs["surrogate_param"] = 2.0  # support |u| < 1/2
    x = current.clone().requires_grad_()
    out = lif(x, beta, threshold, v0, return_band=True, return_trace=True, backend=backend, **kwargs)
    assert type(out).__name__ == "LIFBandOutput" and out.band.dtype == torch.bool
    assert torch.equal(out.band, (out.trace.detach() - threshold).abs() < width)
    assert 0 < int(out.band.sum()) < out.band.numel()
    plain = lif(current, beta, threshold, v0, backend=backend, **kwargs)
    assert torch.equal(out.spikes, plain.spikes)  # the forward is unchanged
    # a gradient on the spikes only outside the band moves nothing: the surrogate is zero there
    (g,) = torch.autograd.grad(out.spikes, x, (~out.band).float())
    assert bool((g == 0).all())


def test_return_band_needs_compact_support():
    with pytest.raises(ValueError, match="return_band needs a surrogate with compact support"):
        lif(torch.randn(3, 4), return_band=True)
    assert lif(torch.randn(3, 4), grad_band=0.1, return_band=True).band.shape == (3, 4)
