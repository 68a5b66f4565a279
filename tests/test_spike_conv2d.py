"""spike_conv2d: every backend against F.conv2d (float64), forward and backward; SynOps against a
brute-force count; bad input; the C++ boundary.

Tolerances: float32 kernels against the float64 reference at rtol 1e-5 and
atol 1e-5 * sqrt(terms summed per output element) (the kernels sum in another order than oneDNN);
float64 kernels at 1e-10.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from spike_data import make_spikes

import sparsespike
from sparsespike import count_synops, spike_conv2d, spike_conv2d_reference

DENSITIES = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.01, 0.6))


def make_weight(c_out, c_in, kernel, dtype, seed, bias=True):
    g = torch.Generator().manual_seed(seed + 1)
    scale = 1 / math.sqrt(c_in * kernel[0] * kernel[1])
    w = (torch.randn(c_out, c_in, *kernel, generator=g, dtype=torch.float64) * scale).to(dtype)
    b = torch.randn(c_out, generator=g, dtype=torch.float64).to(dtype) if bias else None
    return w, b


def assert_matches(actual, expected64, terms, dtype):
    eps = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(
        actual.double(), expected64, rtol=eps, atol=eps * math.sqrt(max(terms, 1)), check_dtype=False
    )


@st.composite
def geometries(draw, max_size=9, max_channels=6, max_out=20):
    """(N, C_in, C_out, H, W, kernel, stride, padding, dilation) that F.conv2d accepts and whose
    padding is within the allowed range."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    extent = (dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1))
    if draw(st.booleans()) and draw(st.booleans()):
        padding, stride = draw(st.sampled_from(["same", "valid"])), (1, 1)
        pads = (extent[0], extent[1]) if padding == "same" else (0, 0)
        if padding == "valid":
            stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        padding = (draw(st.integers(0, extent[0])), draw(st.integers(0, extent[1])))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pads = (2 * padding[0], 2 * padding[1])
    h = draw(st.integers(max(1, extent[0] + 1 - pads[0]), max(1, extent[0] + 1 - pads[0]) + max_size))
    w = draw(st.integers(max(1, extent[1] + 1 - pads[1]), max(1, extent[1] + 1 - pads[1]) + max_size))
    n = draw(st.integers(1, 4))
    c_in = draw(st.integers(1, max_channels))
    c_out = draw(st.one_of(st.integers(1, max_out), st.sampled_from([64, 100, 128, 140])))
    return n, c_in, c_out, h, w, kernel, stride, padding, dilation


def check(
    backend, geometry, density, spike_dtype, seed, graded=False, bias=True, spikes_grad=False, wdtype=torch.float32
):
    n, c_in, c_out, h, w, kernel, stride, padding, dilation = geometry
    spikes = make_spikes((n, c_in, h, w), density, spike_dtype, seed, graded)
    weight, b = make_weight(c_out, c_in, kernel, wdtype, seed, bias)
    spikes_grad = spikes_grad and spike_dtype.is_floating_point
    spikes.requires_grad_(spikes_grad)
    weight.requires_grad_()
    if b is not None:
        b.requires_grad_()
    inputs = [t for t, keep in ((spikes, spikes_grad), (weight, True), (b, b is not None)) if keep]
    out = spike_conv2d(spikes, weight, b, stride, padding, dilation, backend=backend)
    x64 = spikes.detach().double().requires_grad_(spikes_grad)
    w64 = weight.detach().double().requires_grad_()
    b64 = None if b is None else b.detach().double().requires_grad_()
    ref = F.conv2d(x64, w64, b64, stride, padding, dilation)
    assert out.shape == ref.shape and out.dtype == wdtype
    assert_matches(out, ref.detach(), c_in * kernel[0] * kernel[1], wdtype)

    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    grads = torch.autograd.grad(out, inputs, grad_out.to(wdtype))
    ref_inputs = [t for t, keep in ((x64, spikes_grad), (w64, True), (b64, b is not None)) if keep]
    ref_grads = torch.autograd.grad(ref, ref_inputs, grad_out)
    positions = n * out.shape[2] * out.shape[3]
    terms = {id(x64): c_out * kernel[0] * kernel[1], id(w64): positions, id(b64): positions}
    for g, r, ri in zip(grads, ref_grads, ref_inputs):
        assert g.shape == r.shape
        assert_matches(g, r, terms[id(ri)], wdtype)


# ----------------------------------------------------------------------------- against F.conv2d


@pytest.mark.parametrize("backend", ["cpp", "auto", "reference"])
@settings(max_examples=60)
@given(
    geometry=geometries(),
    density=DENSITIES,
    spike_dtype=st.sampled_from([torch.float32, torch.bool, torch.uint8]),
    graded=st.booleans(),
    bias=st.booleans(),
    spikes_grad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_conv2d(backend, geometry, density, spike_dtype, graded, bias, spikes_grad, seed):
    check(backend, geometry, density, spike_dtype, seed, graded, bias, spikes_grad)


@settings(max_examples=8)  # the Triton interpreter runs programs one by one: tiny shapes only
@given(
    geometry=geometries(max_size=3, max_channels=3, max_out=5).filter(lambda g: g[2] <= 20 and g[0] <= 2),
    density=DENSITIES,
    spike_dtype=st.sampled_from([torch.float32, torch.bool]),
    graded=st.booleans(),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_triton_matches_conv2d(geometry, density, spike_dtype, graded, bias, seed):
    check("triton", geometry, density, spike_dtype, seed, graded, bias, spikes_grad=True)


@pytest.mark.parametrize("backend", ["cpp", "triton", "auto", "reference"])
def test_float64(backend):
    geometry = (2, 3, 10, 6, 7, (3, 2), (2, 1), (1, 1), (1, 2))
    check(backend, geometry, 0.3, torch.float64, 0, graded=True, spikes_grad=True, wdtype=torch.float64)


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_gradcheck_float64(backend):
    spikes = make_spikes((2, 2, 5, 4), 0.5, torch.float64, 1, graded=True).requires_grad_()
    weight, b = make_weight(3, 2, (2, 3), torch.float64, 1)
    sparsespike.set_crossover("cpu", conv_forward_density=10.0, conv_backward_density=10.0)  # event-driven
    assert torch.autograd.gradcheck(
        lambda s, w, bb: spike_conv2d(s, w, bb, (1, 2), (1, 0), (2, 1), backend=backend),
        (spikes, weight.requires_grad_(), b.requires_grad_()),
    )


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_study_layer_shape(backend):
    """64 -> 128, 3x3, padding 1, at the study's 97% sparsity (a few images)."""
    check(backend, (3, 64, 128, 12, 12, (3, 3), (1, 1), (1, 1), (1, 1)), 0.03, torch.float32, 5)


@pytest.mark.parametrize("backend", ["cpp", "triton", "auto"])
def test_leading_dims_non_contiguous_and_negative_values(backend):
    h, w = (3, 4) if backend == "triton" else (6, 5)  # the interpreter is slow
    base = make_spikes((2, 1, 4, h, w), 0.3, torch.float32, 3, graded=True)  # [T, B, C, H, W]
    base[0, 0, 0, 0, :2] = torch.tensor([-0.0, -2.5])
    weight, b = make_weight(3, 4, (3, 3), torch.float32, 3)
    out = spike_conv2d(base, weight, b, 1, 1, backend=backend)
    ref = F.conv2d(base.reshape(2, 4, h, w).double(), weight.double(), b.double(), 1, 1)
    assert out.shape == (2, 1, 3, h, w)
    assert_matches(out.reshape(2, 3, h, w), ref, 36, torch.float32)
    nchw = base.reshape(2, 4, h, w)
    for spikes in (nchw.to(memory_format=torch.channels_last), nchw[:1, :, :, 1:], nchw.transpose(2, 3)):
        assert not spikes.is_contiguous()
        out = spike_conv2d(spikes, weight.transpose(2, 3), b, 1, 1, backend=backend)
        assert_matches(
            out, F.conv2d(spikes.double(), weight.transpose(2, 3).double(), b.double(), 1, 1), 36, torch.float32
        )


def test_groups_fall_back_to_the_reference_with_a_warning():
    spikes = make_spikes((2, 4, 5, 5), 0.4, torch.float32, 4)
    weight, b = make_weight(6, 2, (3, 3), torch.float32, 4)
    sparsespike.ops.spike_conv2d._warned_groups = False
    with pytest.warns(RuntimeWarning, match="groups > 1"):
        out = spike_conv2d(spikes, weight, b, 1, 1, 1, 2, backend="cpp")
    torch.testing.assert_close(out, F.conv2d(spikes, weight, b, 1, 1, 1, 2))


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_deterministic_across_calls_and_threads(backend):
    # big enough (> 2 x 32768 elements of work) that the kernels really split over threads
    spikes = make_spikes((16, 16, 24, 24), 0.1, torch.float32, 7, graded=True)
    weight, b = make_weight(40, 16, (3, 3), torch.float32, 7)
    weight.requires_grad_()
    grad_out = torch.randn(16, 40, 24, 24)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 2, 3):
            torch.set_num_threads(n)
            weight.grad = None
            out = spike_conv2d(spikes, weight, b, 1, 1, backend=backend)
            out.backward(grad_out)
            results.append((out.detach().clone(), weight.grad.clone()))
    finally:
        torch.set_num_threads(threads)
    for out, gw in results[1:]:
        assert torch.equal(out, results[0][0])
        assert torch.equal(gw, results[0][1])


@pytest.mark.parametrize("force", ["event", "dense"])
def test_auto_both_sides_of_the_crossover(force):
    density = 0.0 if force == "dense" else 10.0
    sparsespike.set_crossover("cpu", conv_forward_density=density, conv_backward_density=density)
    check("auto", (20, 3, 9, 6, 5, (3, 3), (1, 1), (1, 1), (1, 1)), 0.3, torch.float32, 11, spikes_grad=True)


def test_weight_cache_follows_in_place_updates_and_data_edits():
    spikes = make_spikes((3, 2, 6, 6), 0.3, torch.float32, 8)
    weight, b = make_weight(5, 2, (3, 3), torch.float32, 8)
    first = spike_conv2d(spikes, weight, b, 1, 1, backend="cpp")
    with torch.no_grad():
        weight.mul_(2.0)
    second = spike_conv2d(spikes, weight, b, 1, 1, backend="cpp")
    assert not torch.allclose(first, second)
    weight.data[1, 0, 2, 2] += 1.0  # bypasses the version counter
    third = spike_conv2d(spikes, weight, b, 1, 1, backend="cpp")
    assert_matches(third, F.conv2d(spikes.double(), weight.double(), b.double(), 1, 1), 18, torch.float32)


@pytest.mark.parametrize("scale", [-1.0, 2.0, 0.5])
@pytest.mark.parametrize("inference", [False, True])
def test_weight_cache_sees_uniform_edits(scale, inference):
    # a sign flip or a power-of-two scaling changes every word alike (a linear checksum cancels it);
    # inference tensors have no version counter at all
    spikes = make_spikes((3, 4, 6, 6), 0.3, torch.float32, 8)
    with torch.inference_mode(inference):
        weight, b = make_weight(8, 4, (3, 3), torch.float32, 8)  # 288 words
        spike_conv2d(spikes, weight, b, 1, 1, backend="cpp")
        weight.data.mul_(scale)
        out = spike_conv2d(spikes, weight, b, 1, 1, backend="cpp")
    assert_matches(out, F.conv2d(spikes.double(), weight.double(), b.double(), 1, 1), 36, torch.float32)


def test_inference_mode():
    spikes = make_spikes((2, 3, 5, 5), 0.3, torch.float32, 10)
    with torch.inference_mode():
        weight, b = make_weight(4, 3, (3, 3), torch.float32, 10)
        for backend in ("cpp", "auto", "triton", "reference"):
            out = spike_conv2d(spikes, weight, b, 1, 1, backend=backend)
            assert_matches(out, F.conv2d(spikes.double(), weight.double(), b.double(), 1, 1), 27, torch.float32)


def test_reference_is_f_conv2d():
    spikes = make_spikes((2, 3, 5, 5), 0.3, torch.bool, 12)
    weight, b = make_weight(4, 3, (2, 2), torch.float32, 12)
    torch.testing.assert_close(
        spike_conv2d_reference(spikes, weight, b, 2, "valid"), F.conv2d(spikes.float(), weight, b, 2, 0)
    )


# ----------------------------------------------------------------------------- SynOps


def brute_force_synops(spikes, c_out, kernel, stride, padding, dilation, out_size, groups=1):
    """One delivery per (active input, kernel tap landing inside the output, output channel)."""
    count = 0
    for _, _, iy, ix in (spikes != 0).nonzero().tolist():
        for ky in range(kernel[0]):
            for kx in range(kernel[1]):
                ny, nx = iy + padding[0] - ky * dilation[0], ix + padding[1] - kx * dilation[1]
                if ny < 0 or nx < 0 or ny % stride[0] or nx % stride[1]:
                    continue
                if ny // stride[0] < out_size[0] and nx // stride[1] < out_size[1]:
                    count += c_out // groups
    return count


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
@pytest.mark.parametrize(
    "geometry",
    [
        ((3, 3), (1, 1), (1, 1), (1, 1)),  # the study's layers: border inputs reach fewer outputs
        ((3, 2), (2, 3), (2, 1), (1, 2)),  # strided: some inputs reach nothing
        ((2, 3), (1, 1), (0, 0), (3, 1)),  # dilated, valid
    ],
)
def test_synops_equal_brute_force(backend, geometry):
    kernel, stride, padding, dilation = geometry
    shape = (1, 2, 5, 6) if backend == "triton" else (2, 3, 7, 6)  # the interpreter is slow
    spikes = make_spikes(shape, 0.3, torch.float32, 13, graded=True)
    spikes[0, 0, 0, :2] = torch.tensor([-0.0, -1.5])  # -0.0 is silent, graded values count
    weight, _ = make_weight(5, shape[1], kernel, torch.float32, 13)
    with count_synops() as counter:
        out = spike_conv2d(spikes, weight, None, stride, padding, dilation, backend=backend)
        spike_conv2d(spikes.bool(), weight, None, stride, padding, dilation, backend=backend)
    expected = brute_force_synops(spikes, 5, kernel, stride, padding, dilation, out.shape[2:])
    assert counter.total() == 2 * expected
    assert counter.by_op() == {"spike_conv2d": 2 * expected}


def test_synops_same_on_both_paths_and_with_groups():
    spikes = make_spikes((4, 4, 6, 6), 0.2, torch.float32, 14)
    weight, _ = make_weight(6, 4, (3, 3), torch.float32, 14)
    expected = brute_force_synops(spikes, 6, (3, 3), (1, 1), (1, 1), (1, 1), (6, 6))
    for density in (0.0, 10.0):  # dense, then event-driven
        sparsespike.set_crossover("cpu", conv_forward_density=density)
        with count_synops() as counter:
            spike_conv2d(spikes, weight, None, 1, 1, backend="auto")
        assert counter.total() == expected
    grouped, _ = make_weight(6, 2, (3, 3), torch.float32, 14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with count_synops() as counter:
            spike_conv2d(spikes, grouped, None, 1, "same", 1, 2)
    assert counter.total() == brute_force_synops(spikes, 6, (3, 3), (1, 1), (1, 1), (1, 1), (6, 6), groups=2)


# ----------------------------------------------------------------------------- gradient mask


def check_grad_mask(backend, geometry, density, mask_density, seed, wdtype=torch.float32):
    """grad_mask: the spikes' gradient equals the dense input gradient x mask, zero elsewhere;
    the forward and the weight and bias gradients do not change."""
    n, c_in, c_out, h, w, kernel, stride, padding, dilation = geometry
    spikes = make_spikes((n, c_in, h, w), density, wdtype, seed).requires_grad_()
    weight, b = (t.requires_grad_() for t in make_weight(c_out, c_in, kernel, wdtype, seed))
    g = torch.Generator().manual_seed(seed + 3)
    mask = torch.rand(spikes.shape, generator=g) < mask_density
    as_uint8 = seed % 2 == 1
    grad_mask = mask.to(torch.uint8) if as_uint8 else mask
    out = spike_conv2d(spikes, weight, b, stride, padding, dilation, grad_mask=grad_mask, backend=backend)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (spikes, weight, b))
    ref = F.conv2d(x64, w64, b64, stride, padding, dilation)
    assert_matches(out, ref.detach(), c_in * kernel[0] * kernel[1], wdtype)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gs, gw, gb = torch.autograd.grad(out, (spikes, weight, b), grad_out.to(wdtype))
    rs, rw, rb = torch.autograd.grad(ref, (x64, w64, b64), grad_out)
    positions = n * out.shape[2] * out.shape[3]
    assert_matches(gs, rs * mask, c_out * kernel[0] * kernel[1], wdtype)
    assert bool((gs[~mask] == 0).all())
    assert_matches(gw, rw, positions, wdtype)
    assert_matches(gb, rb, positions, wdtype)


@pytest.mark.parametrize("backend", ["cpp", "auto", "reference"])
@settings(max_examples=40)
@given(
    geometry=geometries(),
    density=DENSITIES,
    mask_density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_grad_mask_gives_the_dense_input_gradient_at_the_mask(backend, geometry, density, mask_density, seed):
    check_grad_mask(backend, geometry, density, mask_density, seed)


@pytest.mark.parametrize(
    "geometry",
    [
        (2, 3, 5, 4, 5, (3, 3), (1, 1), (1, 1), (1, 1)),
        (1, 2, 20, 5, 6, (2, 3), (2, 1), (1, 0), (1, 2)),  # stride, dilation, C_out past one block
    ],
)
@pytest.mark.parametrize("mask_density", [0.0, 0.4, 1.0])
def test_triton_grad_mask(geometry, mask_density):
    check_grad_mask("triton", geometry, 0.3, mask_density, 7)


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_grad_mask_float64_and_study_layer(backend):
    check_grad_mask(backend, (2, 3, 10, 6, 7, (3, 2), (2, 1), (1, 1), (1, 2)), 0.3, 0.3, 4, torch.float64)
    if backend == "cpp":  # 64 -> 128, 3x3, padding 1: the study's conv2, four channels at a time
        check_grad_mask(backend, (2, 64, 128, 9, 9, (3, 3), (1, 1), (1, 1), (1, 1)), 0.05, 0.1, 5)


def test_grad_mask_is_checked():
    weight = _w()
    spikes = torch.zeros(1, 3, 5, 5)
    with pytest.raises(ValueError, match="grad_mask must have the spikes' shape"):
        spike_conv2d(spikes, weight, grad_mask=torch.ones(1, 3, 5, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="grad_mask must be a bool or uint8"):
        spike_conv2d(spikes, weight, grad_mask=torch.ones(1, 3, 5, 5))
    with pytest.raises(ValueError, match="grad_mask needs groups=1"):
        spike_conv2d(torch.zeros(1, 4, 5, 5), torch.randn(4, 2, 3, 3), groups=2, grad_mask=torch.ones(1, 4, 5, 5) > 0)


def test_grad_mask_under_torch_compile():
    spikes = make_spikes((2, 3, 6, 6), 0.3, torch.float32, 16).requires_grad_()
    weight, _ = make_weight(5, 3, (3, 3), torch.float32, 16)
    mask = torch.rand(spikes.shape, generator=torch.Generator().manual_seed(16)) < 0.4

    @torch.compile(fullgraph=True)
    def loss_fn(x):
        return spike_conv2d(x, weight, padding=1, grad_mask=mask, backend="cpp").square().sum()

    (got,) = torch.autograd.grad(loss_fn(spikes), spikes)
    x = spikes.detach().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(x, weight, None, 1, 1).square().sum(), x)
    torch.testing.assert_close(got, want * mask, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- torch integration


def test_opcheck():
    spikes = make_spikes((1, 2, 4, 3), 0.4, torch.float32, 15).requires_grad_()
    weight, b = make_weight(3, 2, (3, 2), torch.float32, 15)
    geometry = ([1, 2], [1, 1, 0, 0], [1, 1])
    for backend in ("reference", "cpp", "auto", "triton"):
        mask = torch.rand(spikes.shape, generator=torch.Generator().manual_seed(15)) < 0.5
        for grad_mask in (None, mask):
            torch.library.opcheck(
                torch.ops.sparsespike.spike_conv2d.default,
                (spikes, weight.requires_grad_(), b.requires_grad_(), *geometry, grad_mask, backend),
            )
        torch.library.opcheck(
            torch.ops.sparsespike.spike_conv2d_grad_input.default,
            (torch.randn(1, 3, 4, 1), weight.detach(), mask, *geometry, backend),
        )
        counts = torch.tensor([int(torch.count_nonzero(spikes)), 0])
        torch.library.opcheck(
            torch.ops.sparsespike.spike_conv2d_grad_weight.default,
            (torch.randn(1, 3, 4, 1), spikes.detach(), counts, [3, 2], *geometry, backend),
        )


def test_torch_compile_fullgraph_forward_backward():
    layer = sparsespike.nn.SpikeConv2d(3, 5, 3, padding=1, backend="cpp")
    spikes = make_spikes((2, 3, 6, 6), 0.3, torch.float32, 16).requires_grad_()

    @torch.compile(fullgraph=True)
    def step(x):
        return layer(x).relu().sum()

    loss = step(spikes)
    loss.backward()
    ref_spikes = spikes.detach().clone().requires_grad_()
    ref_w = layer.weight.detach().clone().requires_grad_()
    ref_loss = F.conv2d(ref_spikes, ref_w, layer.bias.detach(), 1, 1).relu().sum()
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(spikes.grad, ref_spikes.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, ref_w.grad, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- bad input

BACKENDS = ["reference", "cpp", "triton", "auto"]


def _w(c_out=4, c_in=3, k=3):
    return torch.randn(c_out, c_in, k, k)


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadInput:
    def test_channel_mismatch(self, backend):
        with pytest.raises(ValueError, match="spikes has 2 channels .* weight expects C_in=3"):
            spike_conv2d(torch.zeros(1, 2, 5, 5), _w(), backend=backend)

    def test_3d_and_wrong_rank(self, backend):
        with pytest.raises(ValueError, match=r"spikes must be 4-D .* add a batch dimension"):
            spike_conv2d(torch.zeros(3, 5, 5), _w(), backend=backend)
        with pytest.raises(ValueError, match="weight must be 4-D"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), torch.zeros(4, 3, 3), backend=backend)

    def test_non_finite(self, backend):
        for bad in (float("nan"), float("inf"), -float("inf")):
            spikes = torch.zeros(2, 3, 5, 5)
            spikes[1, 2, 4, 4] = bad
            with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
                spike_conv2d(spikes, _w(), padding=1, backend=backend)

    def test_padding(self, backend):
        with pytest.raises(ValueError, match=r"padding \(2, 1\) is larger than allowed.*= \(1, 1\)") as err:
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(k=2), padding=(2, 1), backend=backend)
        assert "padding" in str(err.value)
        spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), padding=2, dilation=1, backend=backend)  # the limit
        with pytest.raises(ValueError, match="padding must be at least 0"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), padding=-1, backend=backend)
        with pytest.raises(ValueError, match="padding must be an int, a pair of ints, 'valid' or 'same'"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), padding="full", backend=backend)
        with pytest.raises(ValueError, match="padding='same' needs stride 1"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), stride=2, padding="same", backend=backend)
        with pytest.raises(TypeError, match="padding must be an int or a pair of ints"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), padding=(1, 1, 1), backend=backend)

    def test_geometry(self, backend):
        with pytest.raises(ValueError, match="stride must be at least 1"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), stride=0, backend=backend)
        with pytest.raises(ValueError, match="dilation must be at least 1"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), dilation=(1, 0), backend=backend)
        with pytest.raises(TypeError, match="stride must be an int or a pair"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), stride=1.5, backend=backend)
        with pytest.raises(
            ValueError, match=r"spikes of size 2x5 .* smaller than the dilated kernel of weight \(3x3\)"
        ):
            spike_conv2d(torch.zeros(1, 3, 2, 5), _w(), backend=backend)
        with pytest.raises(ValueError, match="groups=2 must divide"):
            spike_conv2d(torch.zeros(1, 6, 5, 5), _w(c_out=5), groups=2, backend=backend)

    def test_types_bias_and_empty(self, backend):
        with pytest.raises(TypeError, match="spikes must be bool, uint8 or the weight's dtype"):
            spike_conv2d(torch.zeros(1, 3, 5, 5, dtype=torch.int32), _w(), backend=backend)
        with pytest.raises(TypeError, match="spikes must be a torch.Tensor"):
            spike_conv2d([[0.0]], _w(), backend=backend)
        with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), torch.zeros(4, 3, 3, 3, dtype=torch.int64), backend=backend)
        with pytest.raises(ValueError, match=r"bias must have shape \[4\]"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), torch.zeros(5), backend=backend)
        with pytest.raises(TypeError, match="bias must have the weight's dtype"):
            spike_conv2d(torch.zeros(1, 3, 5, 5), _w(), torch.zeros(4, dtype=torch.float64), backend=backend)
        with pytest.raises(ValueError, match="spikes has zero elements"):
            spike_conv2d(torch.zeros(0, 3, 5, 5), _w(), backend=backend)


def test_cpp_backend_needs_float32_or_float64():
    with pytest.raises(TypeError, match="backend='cpp' supports float32 and float64"):
        spike_conv2d(torch.zeros(1, 3, 5, 5, dtype=torch.bool), _w().half(), backend="cpp")


class TestExtensionBoundary:
    """The C++ module validates on its own, before touching memory, whoever calls it."""

    def setup_method(self):
        from sparsespike import _C

        self.C = _C
        self.spikes = torch.zeros(2, 3, 5, 5).numpy()
        self.packed = torch.zeros(27, 8).numpy()  # [C_in * 3 * 3, 4 outputs padded to 8]
        self.geom = ([3, 3], [1, 1], [1, 1], [1, 1])

    def forward(self, spikes=None, packed=None, bias=None, out=None, geom=None):
        out = torch.zeros(2, 4, 5, 5).numpy() if out is None else out
        return self.C.spike_conv2d_forward(
            self.spikes if spikes is None else spikes,
            self.packed if packed is None else packed,
            bias,
            out,
            *(geom or self.geom),
            1,
        )

    def test_forward_arrays(self):
        assert self.forward() == (0, 0)
        with pytest.raises(ValueError, match=r"packed_weight must have shape \[27, 8\]"):
            self.forward(packed=torch.zeros(27, 4).numpy())
        with pytest.raises(TypeError, match="packed_weight must have dtype float32"):
            self.forward(packed=torch.zeros(27, 8, dtype=torch.float64).numpy())
        with pytest.raises(ValueError, match="out has 3 images but spikes has 2"):
            self.forward(out=torch.zeros(3, 4, 5, 5).numpy())
        with pytest.raises(ValueError, match="spikes must be 4-D"):
            self.forward(spikes=torch.zeros(3, 5, 5).numpy())
        with pytest.raises(ValueError, match="spikes must be C-contiguous"):
            self.forward(spikes=torch.zeros(2, 3, 5, 10).numpy()[..., ::2])
        with pytest.raises(TypeError, match="spikes must be bool, uint8 or the out's dtype"):
            self.forward(spikes=torch.zeros(2, 3, 5, 5, dtype=torch.int32).numpy())
        with pytest.raises(ValueError, match=r"bias must have shape \[4\]"):
            self.forward(bias=torch.zeros(5).numpy())
        readonly = torch.zeros(2, 4, 5, 5).numpy()
        readonly.setflags(write=False)
        with pytest.raises(ValueError, match="out must be writable"):
            self.forward(out=readonly)

    def test_forward_geometry(self):
        with pytest.raises(ValueError, match="stride must be at least 1"):
            self.forward(geom=([3, 3], [0, 1], [1, 1], [1, 1]))
        with pytest.raises(ValueError, match="padding must be at least dilation|padding must be at most"):
            self.forward(geom=([3, 3], [1, 1], [3, 1], [1, 1]))
        with pytest.raises(ValueError, match="padding must be at least 0"):
            self.forward(geom=([3, 3], [1, 1], [-1, 1], [1, 1]))
        with pytest.raises(ValueError, match="the output is larger than the padded input allows"):
            self.forward(out=torch.zeros(2, 4, 9, 5).numpy())
        with pytest.raises(ValueError, match="kernel_size must be at least 1"):
            self.forward(geom=([0, 3], [1, 1], [0, 1], [1, 1]))

    def test_non_finite_leaves_the_output_untouched(self):
        spikes = torch.zeros(2, 3, 5, 5)
        spikes[0, 0, 0, 0] = 1.0
        spikes[1, 2, 3, 3] = float("nan")
        out = torch.full((2, 4, 5, 5), 7.0)
        with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
            self.forward(spikes=spikes.numpy(), out=out.numpy())
        assert bool((out == 7.0).all())
        with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
            self.C.spike_conv2d_scan(spikes.numpy(), *self.geom, [5, 5], 1)

    def test_grad_weight_and_pack(self):
        grad = torch.zeros(2, 4, 5, 5).numpy()
        gwt = torch.zeros(27, 4).numpy()
        assert self.C.spike_conv2d_grad_weight(self.spikes, grad, gwt, *self.geom, 1) == (0, 0)
        with pytest.raises(ValueError, match=r"grad_weight_t must have shape \[27, 4\]"):
            self.C.spike_conv2d_grad_weight(self.spikes, grad, torch.zeros(27, 5).numpy(), *self.geom, 1)
        with pytest.raises(ValueError, match="grad_out has 1 images but spikes has 2"):
            self.C.spike_conv2d_grad_weight(self.spikes, grad[:1], gwt, *self.geom, 1)
        with pytest.raises(TypeError, match="grad_out must be float32 or float64"):
            self.C.spike_conv2d_grad_weight(self.spikes, grad.astype("float16"), gwt, *self.geom, 1)
        with pytest.raises(ValueError, match=r"packed must have shape \[27, 8\]"):
            self.C.spike_conv2d_pack_weight(torch.zeros(4, 3, 3, 3).numpy(), torch.zeros(27, 4).numpy(), 1)
        with pytest.raises(ValueError, match="weight must be 4-D"):
            self.C.spike_conv2d_pack_weight(torch.zeros(4, 27).numpy(), self.packed, 1)

    def test_masked_grad_input(self):
        mask = torch.ones(2, 3, 5, 5, dtype=torch.bool).numpy()
        grad = torch.ones(2, 4, 5, 5).numpy()
        out = torch.full((2, 3, 5, 5), float("nan")).numpy()
        self.C.spike_conv2d_grad_input_masked(mask, grad, self.packed, out, *self.geom, 1)
        assert (out == 0).all()  # packed weight of zeros
        with pytest.raises(TypeError, match="grad_mask must be bool or uint8"):
            self.C.spike_conv2d_grad_input_masked(self.spikes, grad, self.packed, out, *self.geom, 1)
        with pytest.raises(ValueError, match="grad_out has 1 images but grad_mask has 2"):
            self.C.spike_conv2d_grad_input_masked(mask, grad[:1], self.packed, out, *self.geom, 1)
        with pytest.raises(ValueError, match=r"packed_weight must have shape \[27, 8\]"):
            self.C.spike_conv2d_grad_input_masked(mask, grad, self.packed[:, :4], out, *self.geom, 1)
        with pytest.raises(ValueError, match=r"grad_input must have shape \[2, 3, 5, 5\]"):
            self.C.spike_conv2d_grad_input_masked(mask, grad, self.packed, out[:1], *self.geom, 1)
        with pytest.raises(TypeError, match="grad_out must be float32 or float64"):
            self.C.spike_conv2d_grad_input_masked(mask, grad.astype("float16"), self.packed, out, *self.geom, 1)


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "auto", "reference"])
@pytest.mark.parametrize("wdtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.3, 1.0])
def test_cuda_matches_conv2d(backend, wdtype, density):
    spikes = make_spikes((6, 16, 20, 18), density, torch.bool, 17).cuda()
    weight, b = (t.cuda() for t in make_weight(40, 16, (3, 3), wdtype, 17))
    weight.requires_grad_()
    out = spike_conv2d(spikes, weight, b, 1, 1, backend=backend)
    ref = F.conv2d(spikes.double(), weight.detach().double(), b.double(), 1, 1)
    tol = 1e-4 if wdtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * 10)
    grad_out = torch.randn(out.shape, device="cuda", dtype=wdtype)
    out.backward(grad_out)
    ref_w = weight.detach().double().requires_grad_()
    F.conv2d(spikes.double(), ref_w, None, 1, 1).backward(grad_out.double())
    torch.testing.assert_close(weight.grad.double(), ref_w.grad, rtol=tol, atol=tol * 50)


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_binary_spikes_saved_as_bytes(backend):
    # 0/1 float spikes are held for the weight gradient as uint8; graded ones as they are; the
    # gradients equal the reference either way
    weight, b = make_weight(4, 3, (3, 3), torch.float64, 21)
    for graded in (False, True):
        spikes = make_spikes((2, 3, 8, 8), 0.2, torch.float64, 21) * (0.5 if graded else 1.0)
        w = weight.detach().clone().requires_grad_()
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t):
            out = spike_conv2d(spikes, w, b, padding=1, backend=backend)
        assert (torch.uint8 in saved) != graded
        grad = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        out.backward(grad)
        w_ref = weight.detach().clone().requires_grad_()
        spike_conv2d_reference(spikes, w_ref, b, padding=1).backward(grad)
        torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-12, atol=1e-12)
