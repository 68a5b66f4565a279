"""hgrn_scan: every backend against the reference loop, forward and backward.

Tolerances: float32 rtol 1e-5 and atol 1e-5 times the largest reference magnitude (the kernels'
exp differs from torch's by an ulp or so, and the recurrence sums T terms); float64 1e-10.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsespike import _C, hgrn_scan, hgrn_scan_reference


def make_case(shape, dtype, seed, h0=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    # log forget gates in (-3, 0]
    g = -3 * torch.rand(shape, generator=gen, dtype=torch.float64)
    state = torch.randn(shape[1:], generator=gen, dtype=torch.float64) if h0 else None
    return tuple(None if t is None else t.to(dtype) for t in (x, g, state))


def run(backend, case, seed=1, use_h=True, use_final=True):
    """Outputs and gradients (x, g, h0) of a random linear loss on h and h_final."""
    x, g, h0 = (None if t is None else t.detach().clone().requires_grad_() for t in case)
    out = hgrn_scan(x, g, h0, backend=backend)
    gen = torch.Generator().manual_seed(seed)
    loss = 0
    if use_h:
        loss = loss + (out.h * torch.randn(out.h.shape, generator=gen, dtype=torch.float64).to(x.dtype)).sum()
    if use_final:
        loss = (
            loss + (out.h_final * torch.randn(out.h_final.shape, generator=gen, dtype=torch.float64).to(x.dtype)).sum()
        )
    inputs = [t for t in (x, g, h0) if t is not None]
    return out, torch.autograd.grad(loss, inputs)


def assert_close(actual, expected):
    (out, grads), (ref_out, ref_grads) = actual, expected
    for a, r in zip((*out, *grads), (*ref_out, *ref_grads)):
        if a.dtype == torch.float64:
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)
        else:
            scale = max(1.0, r.abs().max().item())
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5 * scale)


shapes = st.tuples(
    st.integers(1, 12),
    st.lists(st.integers(1, 9), min_size=0, max_size=2),
    st.integers(1, 40),
).map(lambda t: (t[0], *t[1], t[2]))


@settings(max_examples=40)
@given(shape=shapes, seed=st.integers(0, 2**16), with_h0=st.booleans())
@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_cpp_matches_reference(backend, shape, seed, with_h0):
    case = make_case(shape, torch.float32, seed, with_h0)
    assert_close(run(backend, case), run("reference", case))


@settings(max_examples=8)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 20)), seed=st.integers(0, 2**16))
def test_triton_matches_reference(shape, seed):
    case = make_case(shape, torch.float32, seed)
    assert_close(run("triton", case), run("reference", case))


# (31, 2, 1500): several neuron blocks, vectors and a scalar tail, and enough work for 2 threads
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpp_many_blocks(dtype):
    case = make_case((31, 2, 1500), dtype, 3)
    assert_close(run("cpp", case), run("reference", case))


@pytest.mark.parametrize("backend", ["cpp", "triton"])
@pytest.mark.parametrize("use_h, use_final", [(True, False), (False, True)])
def test_one_output_used(backend, use_h, use_final):
    case = make_case((6, 3, 5), torch.float64, 4)
    expected = run("reference", case, use_h=use_h, use_final=use_final)
    assert_close(run(backend, case, use_h=use_h, use_final=use_final), expected)


@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_gradient_broadcast_over_time(backend):
    # h.sum() hands backward a stride-0 expansion, which the kernels read as one row
    x, g, h0 = (t.requires_grad_() for t in make_case((7, 2, 6), torch.float64, 5))
    out = hgrn_scan(x, g, h0, backend=backend)
    grads = torch.autograd.grad(out.h.sum() + 3 * out.h_final.sum(), (x, g, h0))
    ref = hgrn_scan_reference(x, g, h0)
    ref_grads = torch.autograd.grad(ref.h.sum() + 3 * ref.h_final.sum(), (x, g, h0))
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


def test_cpp_thread_count_does_not_change_results():
    x, g, h0 = (t.requires_grad_() for t in make_case((40, 3, 1100), torch.float32, 6))
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = hgrn_scan(x, g, h0, backend="cpp")
            results.append((*out, *torch.autograd.grad(out.h.square().sum(), (x, g, h0))))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_cpp_exp_accuracy_and_range():
    # h = exp(g) * 1 + 0 over a dense grid of gates (g <= 0): the vectorised expf against float64,
    # and gates far below the polynomial's range (subnormal, zero), where its input is clamped
    g = torch.cat([torch.linspace(-87, 0, 200_003), torch.tensor([-300.0, -103.0, -95.5, -87.2, -0.0, -1e-8])])
    g = g.reshape(1, -1)
    out = hgrn_scan(torch.zeros_like(g), g, torch.ones(g.shape[1]), backend="cpp")
    exact = torch.exp(g.double())
    rel = (out.h.double() - exact).abs() / exact.clamp_min(torch.finfo(torch.float32).tiny)
    assert rel[exact > torch.finfo(torch.float32).tiny].max() < 2.5e-7  # ~2 ulp
    torch.testing.assert_close(out.h, torch.exp(g), rtol=2.5e-7, atol=0)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_gradcheck_float64(backend):
    x, g, h0 = (t.requires_grad_() for t in make_case((5, 2, 3), torch.float64, 7))
    assert torch.autograd.gradcheck(lambda *a: tuple(hgrn_scan(*a, backend=backend)), (x, g, h0))


def test_float32_and_bfloat16_auto():
    # auto runs the kernel for float32 and the reference for other float dtypes
    x, g, h0 = make_case((4, 3), torch.float32, 8)
    for dtype in (torch.bfloat16, torch.float16):
        out = hgrn_scan(x.to(dtype), g.to(dtype), h0.to(dtype), backend="auto")
        ref = hgrn_scan_reference(x.to(dtype), g.to(dtype), h0.to(dtype))
        assert out.h.dtype == dtype and torch.equal(out.h, ref.h)
    with pytest.raises(TypeError, match="float32 and float64"):
        hgrn_scan(x.half(), g.half(), backend="cpp")


def _saved(out):
    node = out.h.grad_fn.next_functions[0][0]  # the hgrn node under the reshape
    return node.saved_tensors


def test_saved_for_backward_is_g_h_and_h0():
    x, g, h0 = (t.requires_grad_() for t in make_case((6, 2, 4), torch.float32, 9))
    out = hgrn_scan(x, g, h0, backend="cpp")
    saved = _saved(out)
    assert len(saved) == 3
    assert saved[0].data_ptr() == g.data_ptr()  # the input itself, not a copy
    assert saved[1].data_ptr() == out.h.data_ptr()  # the output itself
    assert saved[2].data_ptr() == h0.data_ptr()


def test_opcheck_and_compile():
    x, g, h0 = (t.requires_grad_() for t in make_case((4, 6), torch.float32, 10))
    for backend in ("cpp", "triton"):
        torch.library.opcheck(torch.ops.sparsespike.hgrn_scan.default, (x, g, h0, backend))
        h = hgrn_scan(x, g, h0, backend=backend).h.detach()
        grad_h, grad_final = torch.randn(4, 6), torch.randn(6)
        torch.library.opcheck(
            torch.ops.sparsespike.hgrn_scan_backward.default, (grad_h, grad_final, g.detach(), h, h0.detach(), backend)
        )

    @torch.compile(fullgraph=True)
    def loss_fn(x, g, h0):
        out = hgrn_scan(x, g, h0, backend="cpp")
        return out.h.square().sum() + out.h_final.sum()

    loss = loss_fn(x, g, h0)
    grads = torch.autograd.grad(loss, (x, g, h0))
    ref = hgrn_scan_reference(x, g, h0)
    ref_loss = ref.h.square().sum() + ref.h_final.sum()
    ref_grads = torch.autograd.grad(ref_loss, (x, g, h0))
    torch.testing.assert_close(loss, ref_loss)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_bad_input(backend):
    x, g, h0 = make_case((4, 3), torch.float32, 11)
    with pytest.raises(ValueError, match="g must have x's shape"):
        hgrn_scan(x, g[:, :2], backend=backend)
    with pytest.raises(ValueError, match="h0 must have the state shape"):
        hgrn_scan(x, g, torch.zeros(4), backend=backend)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        hgrn_scan(torch.zeros(4, 3, dtype=torch.int64), g.long(), backend=backend)
    with pytest.raises(TypeError, match="g must have x's dtype"):
        hgrn_scan(x, g.double(), backend=backend)
    with pytest.raises(TypeError, match="h0 must have x's dtype"):
        hgrn_scan(x, g, h0.double(), backend=backend)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        hgrn_scan(x.tolist(), g, backend=backend)
    with pytest.raises(ValueError, match="T = 0"):
        hgrn_scan(torch.zeros(0, 3), torch.zeros(0, 3), backend=backend)
    with pytest.raises(ValueError, match="leading time dimension"):
        hgrn_scan(torch.tensor(1.0), torch.tensor(1.0), backend=backend)
    with pytest.raises(ValueError, match="g is a meta tensor"):
        hgrn_scan(x, g.to("meta"), backend=backend)
    with pytest.raises(ValueError, match="h0 is a meta tensor"):
        hgrn_scan(x, g, h0.to("meta"), backend=backend)
    for name in ("x", "g", "h0"):
        args = {"x": x.clone(), "g": g.clone(), "h0": h0.clone()}
        args[name].view(-1)[1] = float("nan") if name != "g" else float("inf")
        with pytest.raises(ValueError, match=f"{name} contains NaN or Inf"):
            hgrn_scan(args["x"], args["g"], args["h0"], backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        hgrn_scan(x, g, backend="cuda")


# --------------------------------------------------------------------------- the C++ boundary


def _arrays(steps=3, n=5, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, n)).astype(dtype)
    g = -rng.random((steps, n)).astype(dtype)
    return x, g, np.zeros(n, dtype), np.empty((steps, n), dtype), np.empty(n, dtype)


def test_cpp_forward_rejects_bad_arrays():
    x, g, h0, h, hf = _arrays()
    _C.hgrn_scan_forward(x, g, h0, h, hf, 1)  # the good call
    np.testing.assert_allclose(hf, h[-1])
    cases = [
        ((x.astype(np.int32), g, h0, h, hf), TypeError, "x must be float32 or float64"),
        ((x, g.astype(np.float64), h0, h, hf), TypeError, "g must have dtype float32"),
        ((x, g[:, :4].copy(), h0, h, hf), ValueError, r"g must have shape \[3, 5\]"),
        ((x, g, np.zeros(4, np.float32), h, hf), ValueError, r"h0 must have shape \[5\]"),
        ((x, g, h0, np.empty((3, 5)), hf), TypeError, "h must have dtype float32"),
        ((x, g, h0, h, np.empty(6, np.float32)), ValueError, r"h_final must have shape \[5\]"),
        ((x[0], g, h0, h, hf), ValueError, "x must be 2-D"),
        ((x[:0], g[:0], h0, h[:0], hf), ValueError, "x must have at least one step"),
        ((np.asfortranarray(np.ones((3, 5), np.float32)), g, h0, h, hf), ValueError, "x must be C-contiguous"),
    ]
    read_only = np.empty((3, 5), np.float32)
    read_only.flags.writeable = False
    cases.append(((x, g, h0, read_only, hf), ValueError, "h must be writable"))
    for name, index in (("x", 0), ("g", 1), ("h0", 2)):
        args = [a.copy() for a in (x, g, h0)]
        args[index].reshape(-1)[2] = np.nan
        cases.append(((*args, h, hf), ValueError, f"{name} contains NaN or Inf"))
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            _C.hgrn_scan_forward(*args, 1)


def test_cpp_backward_rejects_bad_arrays():
    x, g, h0, h, hf = _arrays(dtype=np.float64)
    _C.hgrn_scan_forward(x, g, h0, h, hf, 1)
    outs = [np.empty((3, 5)), np.empty((3, 5)), np.empty(5)]
    grad_h = np.ones((3, 5))
    _C.hgrn_scan_backward(grad_h, None, g, h, h0, *outs, 1)  # the good call
    _C.hgrn_scan_backward(np.ones(5), np.ones(5), g, h, h0, *outs, 1)  # broadcast row and a final grad
    cases = [
        ((np.ones((2, 5)), None, g, h, h0, *outs), ValueError, r"grad_h must have shape \[3, 5\]"),
        ((np.ones(4), None, g, h, h0, *outs), ValueError, r"grad_h must have shape \[5\]"),
        ((grad_h, np.ones(5, np.float32), g, h, h0, *outs), TypeError, "grad_h_final must have dtype float64"),
        ((grad_h, None, g.astype(np.int64), h, h0, *outs), TypeError, "g must be float32 or float64"),
        ((grad_h, None, g, h[:2], h0, *outs), ValueError, r"h must have shape \[3, 5\]"),
        (
            (grad_h, None, g, h, h0, np.empty((3, 5), np.float32), outs[1], outs[2]),
            TypeError,
            "grad_x must have dtype float64",
        ),
        ((grad_h, None, g, h, h0, outs[0], outs[1], np.empty(3)), ValueError, r"grad_h0 must have shape \[5\]"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            _C.hgrn_scan_backward(*args, 1)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_triton_matches_reference(dtype):
    case = tuple(t.cuda() for t in make_case((40, 4, 300), dtype, 12))
    assert_close(run("auto", case), run("reference", case))
    x, g, _ = case
    with pytest.raises(ValueError, match="g is on cpu but x is on cuda"):
        hgrn_scan(x, g.cpu())
