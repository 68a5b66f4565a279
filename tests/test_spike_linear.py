"""spike_linear: every backend against the reference, forward and backward.

Tolerances: float32 kernels are compared with the float64 reference at rtol 1e-5 and
atol 1e-5 * sqrt(terms summed per output), since kernels sum in another order than the GEMM.
float64 kernels at rtol 1e-10 and atol 1e-10 * sqrt(terms).
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from spike_data import make_spikes

import sparsespike
from sparsespike import spike_linear, spike_linear_reference

CPU_BACKENDS = ["reference", "cpp", "auto"]
DENSITIES = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.001, 0.5))


def make_layer(in_f, out_f, dtype, seed, bias=True):
    g = torch.Generator().manual_seed(seed + 1)
    w = (torch.randn(out_f, in_f, generator=g, dtype=torch.float64) / math.sqrt(in_f)).to(dtype)
    b = torch.randn(out_f, generator=g, dtype=torch.float64).to(dtype) if bias else None
    return w, b


def assert_matches(actual, expected64, terms, dtype):
    eps = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(
        actual.double(), expected64, rtol=eps, atol=eps * math.sqrt(max(terms, 1)), check_dtype=False
    )


def reference64(spikes, weight, bias):
    return spike_linear_reference(spikes.double(), weight.double(), None if bias is None else bias.double())


def check_forward(backend, shape, out_f, density, spike_dtype, seed, graded=False, bias=True, wdtype=torch.float32):
    in_f = shape[-1]
    spikes = make_spikes(shape, density, spike_dtype, seed, graded)
    weight, b = make_layer(in_f, out_f, wdtype, seed, bias)
    out = spike_linear(spikes, weight, b, backend=backend)
    assert out.shape == (*shape[:-1], out_f)
    assert out.dtype == wdtype
    assert_matches(out, reference64(spikes, weight, b), in_f, wdtype)


def check_backward(backend, shape, out_f, density, seed, graded=False, spikes_grad=True, wdtype=torch.float32):
    in_f = shape[-1]
    spikes = make_spikes(shape, density, wdtype, seed, graded).requires_grad_(spikes_grad)
    weight, b = make_layer(in_f, out_f, wdtype, seed)
    weight.requires_grad_()
    b.requires_grad_()
    out = spike_linear(spikes, weight, b, backend=backend)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 2), dtype=wdtype)
    inputs = (spikes, weight, b) if spikes_grad else (weight, b)
    grads = torch.autograd.grad(out, inputs, grad_out)

    s64, w64, b64 = (t.detach().double().requires_grad_() for t in (spikes, weight, b))
    ref_inputs = (s64, w64, b64) if spikes_grad else (w64, b64)
    ref_grads = torch.autograd.grad(spike_linear_reference(s64, w64, b64), ref_inputs, grad_out.double())
    rows = spikes.numel() // in_f
    terms = {id(s64): out_f, id(w64): rows, id(b64): rows}
    for g, r, ri in zip(grads, ref_grads, ref_inputs):
        assert g.shape == r.shape
        assert_matches(g, r, terms[id(ri)], wdtype)


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(
    rows=st.integers(1, 2000),
    in_f=st.integers(1, 1100),
    out_f=st.integers(1, 1100),
    density=DENSITIES,
    spike_dtype=st.sampled_from([torch.float32, torch.bool, torch.uint8]),
    seed=st.integers(0, 2**16),
)
def test_forward_matches_reference(backend, rows, in_f, out_f, density, spike_dtype, seed):
    check_forward(backend, (rows, in_f), out_f, density, spike_dtype, seed)


@pytest.mark.parametrize("backend", ["triton", "cpp", "auto"])
@settings(max_examples=25)  # the Triton interpreter runs programs one by one: keep CI short
@given(
    shape=st.sampled_from([(1, 1), (3, 17), (5, 64), (2, 3, 40), (33, 129), (7, 1025)]),
    out_f=st.integers(1, 150),
    density=DENSITIES,
    spike_dtype=st.sampled_from([torch.float32, torch.bool, torch.uint8]),
    graded=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_forward_small_shapes(backend, shape, out_f, density, spike_dtype, graded, bias, seed):
    check_forward(backend, shape, out_f, density, spike_dtype, seed, graded=graded, bias=bias)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
def test_forward_float64(backend):
    check_forward(backend, (6, 70), 90, 0.2, torch.float64, 0, graded=True, wdtype=torch.float64)


def test_forward_float16_triton_interpreted():
    spikes = make_spikes((9, 40), 0.3, torch.float16, 3)
    weight, b = make_layer(40, 24, torch.float16, 3)
    out = spike_linear(spikes, weight, b, backend="triton")
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), reference64(spikes, weight, b).float(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
def test_leading_dims_and_single_vector(backend):
    check_forward(backend, (4, 3, 2, 50), 30, 0.1, torch.float32, 1)
    check_forward(backend, (50,), 30, 0.3, torch.float32, 2)


@pytest.mark.parametrize("backend", ["cpp", "triton", "auto"])
def test_non_contiguous_inputs(backend):
    base = make_spikes((64, 80), 0.1, torch.float32, 4)
    weight, b = make_layer(40, 33, torch.float32, 4)
    for spikes in (base[::2, :40], base.t()[:40, :40].t(), base[:, ::2]):
        assert not spikes.is_contiguous()
        out = spike_linear(spikes, weight, b, backend=backend)
        assert_matches(out, reference64(spikes, weight, b), 40, torch.float32)
    w_nc = make_layer(33, 40, torch.float32, 5)[0].t()  # [33 out, 40 in], non-contiguous
    spikes = base[:, :40]
    out = spike_linear(spikes, w_nc, None, backend=backend)
    assert_matches(out, reference64(spikes, w_nc, None), 40, torch.float32)


@pytest.mark.parametrize("backend", ["cpp", "triton", "auto"])
def test_negative_and_graded_values(backend):
    spikes = torch.tensor([[0.0, -2.5, 0.0, 3.0, -0.0], [1e-30, 0.0, 0.0, 0.0, 7.0]])
    weight, b = make_layer(5, 6, torch.float32, 6)
    out = spike_linear(spikes, weight, b, backend=backend)
    assert_matches(out, reference64(spikes, weight, b), 5, torch.float32)


# ----------------------------------------------------------------------------- backward


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(
    rows=st.integers(1, 2000),
    in_f=st.integers(1, 1100),
    out_f=st.integers(1, 1100),
    density=DENSITIES,
    spikes_grad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_backward_matches_reference(backend, rows, in_f, out_f, density, spikes_grad, seed):
    check_backward(backend, (rows, in_f), out_f, density, seed, spikes_grad=spikes_grad)


@pytest.mark.parametrize("backend", ["triton", "cpp", "auto"])
@settings(max_examples=20)
@given(
    shape=st.sampled_from([(1, 1), (3, 17), (2, 3, 40), (33, 129), (70, 9)]),
    out_f=st.integers(1, 150),
    density=DENSITIES,
    graded=st.booleans(),
    spikes_grad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_backward_small_shapes(backend, shape, out_f, density, graded, spikes_grad, seed):
    check_backward(backend, shape, out_f, density, seed, graded=graded, spikes_grad=spikes_grad)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
def test_backward_float64(backend):
    check_backward(backend, (12, 70), 50, 0.2, 0, graded=True, wdtype=torch.float64)


def test_gradcheck_reference_float64():
    spikes = make_spikes((5, 7), 0.5, torch.float64, 0, graded=True).requires_grad_()
    weight, b = make_layer(7, 4, torch.float64, 0)
    assert torch.autograd.gradcheck(
        lambda s, w, bb: spike_linear(s, w, bb, backend="reference"),
        (spikes, weight.requires_grad_(), b.requires_grad_()),
    )


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_gradcheck_cpp_float64(backend):
    spikes = make_spikes((6, 9), 0.4, torch.float64, 1, graded=True).requires_grad_()
    weight, b = make_layer(9, 5, torch.float64, 1)
    assert torch.autograd.gradcheck(
        lambda s, w, bb: spike_linear(s, w, bb, backend=backend),
        (spikes, weight.requires_grad_(), b.requires_grad_()),
    )


def test_integer_spikes_do_not_require_grad():
    spikes = make_spikes((8, 20), 0.3, torch.bool, 2)
    weight, b = make_layer(20, 10, torch.float32, 2)
    weight.requires_grad_()
    out = spike_linear(spikes, weight, b, backend="cpp")
    out.sum().backward()
    expected = spikes.float().sum(0).expand(10, 20)
    torch.testing.assert_close(weight.grad, expected)


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_deterministic_across_calls_and_threads(backend):
    spikes = make_spikes((300, 257), 0.05, torch.float32, 7, graded=True)
    weight, b = make_layer(257, 130, torch.float32, 7)
    weight.requires_grad_()
    grad_out = torch.randn(300, 130)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, threads, threads):
            torch.set_num_threads(n)
            weight.grad = None
            out = spike_linear(spikes, weight, b, backend=backend)
            out.backward(grad_out)
            results.append((out.detach().clone(), weight.grad.clone()))
    finally:
        torch.set_num_threads(threads)
    for out, gw in results[1:]:
        assert torch.equal(out, results[0][0])
        assert torch.equal(gw, results[0][1])


def test_weight_cache_follows_in_place_updates():
    spikes = make_spikes((20, 30), 0.2, torch.float32, 8)
    weight, b = make_layer(30, 12, torch.float32, 8)
    first = spike_linear(spikes, weight, b, backend="cpp")
    with torch.no_grad():
        weight.mul_(2.0)
    second = spike_linear(spikes, weight, b, backend="cpp")
    assert_matches(second, reference64(spikes, weight, b), 30, torch.float32)
    assert not torch.allclose(first, second)


def test_weight_cache_never_serves_a_freed_weight():
    spikes = make_spikes((20, 30), 0.3, torch.float32, 9)
    for seed in range(20):  # fresh weights of one shape reuse freed memory
        weight, _ = make_layer(30, 12, torch.float32, seed)
        out = spike_linear(spikes, weight, None, backend="cpp")
        assert_matches(out, reference64(spikes, weight, None), 30, torch.float32)
        del weight


# Edits that bypass the version counter (.data, numpy) and that a linear checksum cancels: a sign
# flip toggles bit 31 of every word, a power-of-two scaling adds one constant to every exponent.
DATA_EDITS = {
    "add_one": lambda w: w.data[3, 7].add_(1.0),
    "permute_rows": lambda w: w.data.copy_(w.data.roll(1, 0)),
    "neg": lambda w: w.data.neg_(),
    "times_two": lambda w: w.data.mul_(2),
    "times_half": lambda w: w.data.mul_(0.5),
    "numpy_write": lambda w: w.detach().numpy().__setitem__((slice(None), 0), 5.0),
}


@pytest.mark.parametrize("edit", DATA_EDITS)
def test_weight_cache_sees_edits_that_bypass_the_version_counter(edit):
    spikes = make_spikes((20, 64), 0.3, torch.float32, 9)
    weight, _ = make_layer(64, 32, torch.float32, 9)  # 2048 words: even, and a multiple of 32
    spike_linear(spikes, weight, None, backend="cpp")
    version = weight._version
    DATA_EDITS[edit](weight)
    assert weight._version == version
    out = spike_linear(spikes, weight, None, backend="cpp")
    assert_matches(out, reference64(spikes, weight, None), 64, torch.float32)


@pytest.mark.parametrize("edit", ["neg", "times_two", "times_half"])
def test_weight_cache_sees_edits_of_inference_tensors(edit):
    # inference tensors have no version counter at all: only the content tells
    spikes = make_spikes((20, 64), 0.3, torch.float32, 9)
    with torch.inference_mode():
        weight, _ = make_layer(64, 32, torch.float32, 9)
        spike_linear(spikes, weight, None, backend="cpp")
        DATA_EDITS[edit](weight)
        out = spike_linear(spikes, weight, None, backend="cpp")
    assert_matches(out, reference64(spikes, weight, None), 64, torch.float32)


def test_inference_mode():
    spikes = make_spikes((10, 30), 0.2, torch.float32, 10)
    with torch.inference_mode():
        weight, b = make_layer(30, 12, torch.float32, 10)
        for backend in ("cpp", "auto", "triton"):
            out = spike_linear(spikes, weight, b, backend=backend)
            assert_matches(out, reference64(spikes, weight, b), 30, torch.float32)


@pytest.mark.parametrize("backend", ["reference", "cpp", "auto", "triton"])
def test_no_grad_fast_path_equals_the_graph_path(backend):
    # without a graph to record the kernels run without autograd.Function: same output, same SynOps
    spikes = make_spikes((20, 30), 0.2, torch.float32, 11)
    weight, b = make_layer(30, 12, torch.float32, 11)
    with sparsespike.count_synops() as graph_counter:
        with_graph = spike_linear(spikes, weight.requires_grad_(), b, backend=backend)
    with torch.no_grad(), sparsespike.count_synops() as plain_counter:
        without = spike_linear(spikes, weight, b, backend=backend)
    assert with_graph.grad_fn is not None and without.grad_fn is None
    assert torch.equal(with_graph.detach(), without)
    assert int(plain_counter.total()) == int(graph_counter.total()) == int(spikes.count_nonzero()) * 12


def _saved_dtypes(fn):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
        out = fn()
    return saved, out


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_binary_spikes_saved_as_bytes(backend):
    # 0/1 float spikes are held for the weight gradient as uint8 (a quarter of the memory); graded
    # ones as they are; the gradients equal the reference either way
    weight, b = make_layer(30, 12, torch.float64, 13)
    for graded in (False, True):
        spikes = make_spikes((50, 30), 0.2, torch.float64, 13)
        if graded:
            spikes = spikes * 0.5
        w = weight.detach().clone().requires_grad_()
        saved, out = _saved_dtypes(lambda: spike_linear(spikes, w, b, backend=backend))
        assert (torch.uint8 in saved) != graded
        grad = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        out.backward(grad)
        w_ref = weight.detach().clone().requires_grad_()
        spike_linear_reference(spikes, w_ref, b).backward(grad)
        torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", ["by_input", "scatter"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spike_dtype", ["float", torch.uint8])
@pytest.mark.parametrize("rows, in_f, out_f", [(50, 300, 70), (7, 1030, 64), (1, 17, 130)])
def test_weight_gradient_comes_in_linear_layout(monkeypatch, kernel, dtype, spike_dtype, rows, in_f, out_f):
    # few rows and at least 64 outputs: the input-by-input kernel; with its limit at zero, the
    # scatter kernel. Both return the gradient in nn.Linear's [out, in] layout (no transposing
    # copy by autograd), ragged column tiles included (70, 130 outputs)
    import importlib

    op = importlib.import_module("sparsespike.ops.spike_linear")
    assert rows * out_f * 8 <= op.BY_INPUT_MAX_GRAD_BYTES and out_f >= op.BY_INPUT_MIN_OUTPUTS
    if kernel == "scatter":
        monkeypatch.setattr(op, "BY_INPUT_MAX_GRAD_BYTES", 0)
    spikes = make_spikes((rows, in_f), 0.1, dtype if spike_dtype == "float" else spike_dtype, 14)
    weight, b = make_layer(in_f, out_f, dtype, 14)
    w = weight.detach().clone().requires_grad_()
    grad = torch.randn(rows, out_f, dtype=dtype, generator=torch.Generator().manual_seed(5))
    (gw,) = torch.autograd.grad(spike_linear(spikes, w, b, backend="cpp"), w, grad)
    assert gw.is_contiguous() and gw.shape == (out_f, in_f)
    expected = (spikes.double().t() @ grad.double()).t()
    assert_matches(gw, expected, rows, dtype)


def test_weight_gradient_input_by_input_refuses_non_finite_spikes():
    from sparsespike._backend import cpp

    spikes = make_spikes((20, 40), 0.2, torch.float32, 15)
    spikes[3, 7] = float("nan")
    gw = torch.full((64, 40), 7.0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        cpp().spike_linear_grad_weight_by_input(spikes.numpy(), torch.randn(20, 64).numpy(), gw.numpy(), 2)
    assert bool((gw == 7.0).all())  # validated before any output was written
    for kernel in (cpp().spike_linear_grad_weight_by_input, cpp().spike_linear_grad_weight):
        with pytest.raises(ValueError, match=r"grad_weight must have shape \[64, 40\]"):
            kernel(spikes.numpy(), torch.randn(20, 64).numpy(), torch.empty(40, 64).numpy(), 2)


def test_spikes_to_bytes_boundaries():
    from sparsespike._backend import cpp

    spikes = torch.tensor([[0.0, 1.0, 1.0], [0.0, -0.0, 1.0]])
    out = torch.empty((2, 3), dtype=torch.uint8)
    assert cpp().spikes_to_bytes(spikes.numpy(), out.numpy(), 2)
    assert torch.equal(out, spikes.to(torch.uint8))
    for bad in (0.5, 2.0, -1.0, float("nan")):
        graded = spikes.clone()
        graded[1, 1] = bad
        assert not cpp().spikes_to_bytes(graded.numpy(), out.numpy(), 2)
    with pytest.raises(TypeError, match="out must be uint8"):
        cpp().spikes_to_bytes(spikes.numpy(), torch.empty((2, 3)).numpy(), 1)
    with pytest.raises(ValueError, match=r"out must have shape \[2, 3\]"):
        cpp().spikes_to_bytes(spikes.numpy(), torch.empty((3, 2), dtype=torch.uint8).numpy(), 1)
    with pytest.raises(TypeError, match="spikes must be float32 or float64"):
        cpp().spikes_to_bytes(spikes.to(torch.uint8).numpy(), out.numpy(), 1)


@pytest.mark.parametrize("rows", [40, 300])  # all rows counted / 64 rows sampled
@pytest.mark.parametrize("force", ["event", "dense"])
def test_auto_both_sides_of_the_crossover(force, rows):
    density = 0.0 if force == "dense" else 1.0
    sparsespike.set_crossover("cpu", forward_density=density, backward_density=density)
    check_forward("auto", (rows, 50), 20, 0.3, torch.float32, 11)
    check_backward("auto", (rows, 50), 20, 0.3, 11)


@pytest.mark.parametrize("check", ["content", "version"])
def test_auto_goes_dense_for_a_few_rows_under_content_checks(monkeypatch, check):
    import importlib

    op = importlib.import_module("sparsespike.ops.spike_linear")  # the module, not the re-exported function
    monkeypatch.setenv("SPARSESPIKE_WEIGHT_CHECK", check)
    sparsespike.set_crossover("cpu", forward_density=1.0, backward_density=1.0)  # event-driven at any density
    calls = []
    real = op._cpp_forward
    monkeypatch.setattr(op, "_cpp_forward", lambda *a: calls.append(a[0].shape[0]) or real(*a))
    weight, b = make_layer(30, 12, torch.float32, 12)
    for rows in (1, op.CONTENT_CHECK_ROWS - 1, op.CONTENT_CHECK_ROWS):
        spikes = make_spikes((rows, 30), 0.2, torch.float32, 12)
        assert_matches(
            spike_linear(spikes, weight, b, backend="auto"), reference64(spikes, weight, b), 30, torch.float32
        )
    # the content check of the packed weight costs more than a dense product of a few rows
    expected = [op.CONTENT_CHECK_ROWS] if check == "content" else [1, op.CONTENT_CHECK_ROWS - 1, op.CONTENT_CHECK_ROWS]
    assert calls == expected


def test_crossover_from_environment(monkeypatch):
    monkeypatch.setenv("SPARSESPIKE_CROSSOVER", '{"cpu": {"forward_density": 0.123}}')
    assert sparsespike.get_crossover("cpu").forward_density == 0.123
    monkeypatch.setenv("SPARSESPIKE_CROSSOVER", "not json")
    with pytest.raises(ValueError, match="SPARSESPIKE_CROSSOVER"):
        sparsespike.get_crossover("cpu")
    with pytest.raises(ValueError, match="unknown crossover field"):
        sparsespike.set_crossover("cpu", speed=1.0)


def test_default_backend(monkeypatch):
    spikes = make_spikes((4, 6), 0.5, torch.float32, 12)
    weight, _ = make_layer(6, 3, torch.float32, 12)
    monkeypatch.setenv("SPARSESPIKE_BACKEND", "reference")
    assert sparsespike.get_default_backend() == "reference"
    spike_linear(spikes, weight)
    monkeypatch.setenv("SPARSESPIKE_BACKEND", "gpu")
    with pytest.raises(ValueError, match="SPARSESPIKE_BACKEND"):
        spike_linear(spikes, weight)
    sparsespike.set_default_backend("cpp")
    assert sparsespike.get_default_backend() == "cpp"
    with pytest.raises(ValueError, match="backend must be one of"):
        sparsespike.set_default_backend("fast")


# ----------------------------------------------------------------------------- input-stationary forward


@pytest.mark.parametrize("wdtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spike_dtype", ["float", torch.bool, torch.uint8])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.4, 1.0])
@pytest.mark.parametrize("shape", [(1, 40), (5, 300), (2, 3, 97), (300, 50)])
def test_input_stationary_forward_equals_the_reference(monkeypatch, shape, density, spike_dtype, wdtype):
    """The wide-input forward (chosen here for every width): outputs across several tiles (600
    and 416 outputs: 8, 4, 2 and single tiles a pass for few rows; 300 rows: one tile a pass),
    graded values, bias or none; backward unchanged."""
    import importlib

    ops = importlib.import_module("sparsespike.ops.spike_linear")
    monkeypatch.setattr(ops, "BY_INPUT_MIN_IN_FEATURES", 1)
    dtype = wdtype if spike_dtype == "float" else spike_dtype
    for out_f, bias in ((70, True), (5, False), (600, True), (416, False)):
        check_forward("cpp", shape, out_f, density, dtype, 3, graded=spike_dtype == "float", bias=bias, wdtype=wdtype)
    check_backward("cpp", shape, 70, density, 4, wdtype=wdtype)


def test_input_stationary_forward_at_visual_fc1_width():
    """Past the real threshold (in_features >= 32768): chosen without a patch."""
    import importlib

    ops = importlib.import_module("sparsespike.ops.spike_linear")
    assert ops._forward_by_input(200, 147968) and not ops._forward_by_input(3200, 1024)
    check_forward("cpp", (3, ops.BY_INPUT_MIN_IN_FEATURES), 40, 0.01, torch.bool, 5)


# ----------------------------------------------------------------------------- gradient mask


def test_count_set_and_the_dense_fallback_decision():
    # auto's dense-gradient fallback counts the mask (one C++ pass on CPU): any shape, bool or uint8
    from sparsespike._backend import count_set
    from sparsespike.dispatch import mask_denser_than

    g = torch.Generator().manual_seed(3)
    for shape in [(3200, 256), (10, 500), (200, 4, 6, 6), (700,)]:
        for dtype in (torch.bool, torch.uint8):
            mask = (torch.rand(shape, generator=g) < 0.3).to(dtype)
            assert int(count_set(mask)) == int(torch.count_nonzero(mask))
            assert mask_denser_than(mask, 0.2) and not mask_denser_than(mask, 0.4)
    assert int(count_set(torch.ones(50, 3, dtype=torch.bool).t())) == 150  # not contiguous
    assert int(count_set(torch.zeros(0, 4, dtype=torch.bool))) == 0


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask_density", [0.0, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(7, 40, 9), (3, 300, 70)])  # outputs across several weight tiles
def test_grad_mask_gives_the_dense_input_gradient_at_the_mask(backend, dtype, mask_density, shape):
    """grad_mask: the spikes' gradient equals (grad_out @ weight) x mask, zero elsewhere; the
    forward and the weight and bias gradients do not change."""
    rows, in_f, out_f = shape
    spikes = make_spikes((rows, in_f), 0.1, dtype, 21).requires_grad_()
    weight, b = (t.requires_grad_() for t in make_layer(in_f, out_f, dtype, 21))
    g = torch.Generator().manual_seed(22)
    mask = torch.rand(rows, in_f, generator=g) < mask_density
    grad_out = torch.randn(rows, out_f, generator=g, dtype=dtype)
    out = spike_linear(
        spikes, weight, b, grad_mask=mask.to(torch.uint8 if mask_density == 0.5 else torch.bool), backend=backend
    )
    gs, gw, gb = torch.autograd.grad(out, (spikes, weight, b), grad_out)
    ref = reference64(spikes.detach(), weight.detach(), b.detach())
    assert_matches(out, ref, in_f, dtype)
    want = (grad_out.double() @ weight.detach().double()) * mask
    assert_matches(gs, want, out_f, dtype)
    assert bool((gs[~mask] == 0).all())
    assert_matches(gw, grad_out.double().t() @ spikes.detach().double(), rows, dtype)
    assert_matches(gb, grad_out.double().sum(0), rows, dtype)


def test_grad_mask_under_torch_compile():
    spikes = make_spikes((5, 12), 0.3, torch.float32, 23).requires_grad_()
    weight, _ = make_layer(12, 4, torch.float32, 23)
    mask = torch.rand(5, 12, generator=torch.Generator().manual_seed(23)) < 0.4

    @torch.compile(fullgraph=True)
    def loss_fn(x):
        return spike_linear(x, weight, grad_mask=mask, backend="cpp").square().sum()

    (got,) = torch.autograd.grad(loss_fn(spikes), spikes)
    out = spikes.detach() @ weight.t()
    torch.testing.assert_close(got, (2 * out @ weight) * mask, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "mask, error, match",
    [
        (torch.ones(4, 5, dtype=torch.bool), ValueError, "grad_mask must have the spikes' shape"),
        (torch.ones(4, 6), TypeError, "grad_mask must be a bool or uint8"),
        ("all", TypeError, "grad_mask"),
    ],
)
def test_grad_mask_is_checked(mask, error, match):
    weight, _ = make_layer(6, 3, torch.float32, 1)
    with pytest.raises(error, match=match):
        spike_linear(torch.zeros(4, 6), weight, grad_mask=mask)


# ----------------------------------------------------------------------------- torch integration


def test_opcheck():
    spikes = make_spikes((6, 10), 0.4, torch.float32, 13).requires_grad_()
    weight, b = make_layer(10, 5, torch.float32, 13)
    for backend in ("reference", "cpp", "auto", "triton"):
        torch.library.opcheck(
            torch.ops.sparsespike.spike_linear.default,
            (spikes, weight.requires_grad_(), b.requires_grad_(), None, backend),
        )
        mask = torch.rand(6, 10) < 0.3
        torch.library.opcheck(torch.ops.sparsespike.spike_linear.default, (spikes, weight, b, mask, backend))
        torch.library.opcheck(
            torch.ops.sparsespike.spike_linear_grad_input.default, (torch.randn(6, 5), weight.detach(), mask, backend)
        )
        nnz = torch.count_nonzero(spikes.detach())
        torch.library.opcheck(
            torch.ops.sparsespike.spike_linear_grad_weight.default,
            (torch.randn(6, 5), spikes.detach(), nnz, backend),
        )


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
def test_custom_op_called_directly_matches_reference(backend):
    # eager calls go through an autograd.Function; the registered op must give the same answers
    spikes = make_spikes((9, 30), 0.3, torch.float32, 17).requires_grad_()
    weight, b = (t.requires_grad_() for t in make_layer(30, 11, torch.float32, 17))
    out, nnz = torch.ops.sparsespike.spike_linear(spikes, weight, b, None, backend)
    assert int(nnz) == int(torch.count_nonzero(spikes))
    grads = torch.autograd.grad(out.square().sum(), (spikes, weight, b))
    ref = spike_linear_reference(spikes, weight, b)
    ref_grads = torch.autograd.grad(ref.square().sum(), (spikes, weight, b))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_torch_compile_fullgraph_forward_backward():
    layer = sparsespike.nn.SpikeLinear(40, 16, backend="cpp")
    spikes = make_spikes((3, 8, 40), 0.2, torch.float32, 14).requires_grad_()

    @torch.compile(fullgraph=True)
    def step(x):
        return layer(x).relu().sum()

    loss = step(spikes)
    loss.backward()
    ref_spikes = spikes.detach().clone().requires_grad_()
    ref_w = layer.weight.detach().clone().requires_grad_()
    ref_loss = spike_linear_reference(ref_spikes, ref_w, layer.bias.detach()).relu().sum()
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(spikes.grad, ref_spikes.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, ref_w.grad, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "auto", "reference"])
@pytest.mark.parametrize("wdtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.2, 1.0])
def test_cuda_matches_reference(backend, wdtype, density):
    shape, out_f = (3, 700, 300), 500
    spikes = make_spikes(shape, density, torch.bool, 15).cuda()
    weight, b = (t.cuda() for t in make_layer(300, out_f, wdtype, 15))
    weight.requires_grad_()
    out = spike_linear(spikes, weight, b, backend=backend)
    ref = reference64(spikes.cpu(), weight.detach().cpu(), b.cpu())
    tol = 1e-4 if wdtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.double().cpu(), ref, rtol=tol, atol=tol * 10)
    grad_out = torch.randn(out.shape, device="cuda", dtype=wdtype)
    out.backward(grad_out)
    ref_gw = grad_out.double().cpu().reshape(-1, out_f).t() @ spikes.cpu().reshape(-1, 300).double()
    torch.testing.assert_close(weight.grad.double().cpu(), ref_gw, rtol=tol, atol=tol * 50)


@pytest.mark.cuda
def test_cuda_float32_backward_with_spike_grad():
    check = make_spikes((64, 300), 0.05, torch.float32, 16).cuda().requires_grad_()
    weight, b = (t.cuda().requires_grad_() for t in make_layer(300, 200, torch.float32, 16))
    out = spike_linear(check, weight, b, backend="triton")
    out.sum().backward()
    ref_s = check.detach().clone().requires_grad_()
    ref_w = weight.detach().clone().requires_grad_()
    spike_linear_reference(ref_s, ref_w, b.detach()).sum().backward()
    torch.testing.assert_close(check.grad, ref_s.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(weight.grad, ref_w.grad, rtol=1e-4, atol=1e-4)
