"""Second-order gradients (create_graph=True): the reference backend of every op passes
torch.autograd.gradgradcheck; every kernel backend refuses with a NotImplementedError naming the
op and pointing at the reference, instead of returning gradients that silently miss terms."""

import pytest
import torch

import sparsespike

KERNEL_BACKENDS = ["cpp", "auto", "triton"]


def _inputs(op: str, dtype=torch.float64):
    """(function of the differentiable inputs, those inputs), for one op."""
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).requires_grad_()

    if op == "spike_linear":
        spikes = (torch.rand(5, 6, generator=gen) < 0.5).to(dtype).requires_grad_()
        return lambda backend: lambda s, w, b: sparsespike.spike_linear(s, w, b, backend=backend), (
            spikes,
            rand(4, 6),
            rand(4),
        )
    if op == "spike_conv2d":
        spikes = (torch.rand(2, 2, 5, 5, generator=gen) < 0.5).to(dtype).requires_grad_()
        return lambda backend: lambda s, w, b: sparsespike.spike_conv2d(s, w, b, padding=1, backend=backend), (
            spikes,
            rand(3, 2, 3, 3),
            rand(3),
        )
    if op == "lif":

        def call(backend):
            return lambda c, v0: sparsespike.lif(c, 0.9, 1.0, v0, backend=backend, return_trace=True).trace

        return call, (rand(6, 5, scale=0.8), rand(5, scale=0.3))
    if op == "hgrn_scan":
        g = (-torch.rand(6, 5, generator=gen, dtype=dtype)).requires_grad_()
        return lambda backend: lambda x, g, h0: sparsespike.hgrn_scan(x, g, h0, backend=backend).h, (
            rand(6, 5),
            g,
            rand(5),
        )
    if op == "modern_hopfield":
        return lambda backend: lambda q, p: sparsespike.modern_hopfield(q, p, 0.5, backend=backend), (
            rand(3, 4),
            rand(5, 4),
        )
    raise AssertionError(op)


OPS = ["spike_linear", "spike_conv2d", "lif", "hgrn_scan", "modern_hopfield"]


@pytest.mark.parametrize("op", OPS)
def test_reference_gradgradcheck(op):
    call, inputs = _inputs(op)
    assert torch.autograd.gradgradcheck(call("reference"), inputs)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_kernels_refuse_double_backward(op, backend):
    if backend == "triton" and op in ("spike_conv2d", "modern_hopfield"):
        dtype = torch.float32  # those Triton kernels take float32/16 (interpreted on CPU)
    else:
        dtype = torch.float64
    call, inputs = _inputs(op, dtype)
    out = call(backend)(*inputs)
    first = torch.autograd.grad(out.square().sum(), inputs[1 if op.startswith("spike") else 0], create_graph=False)
    assert first[0] is not None  # first order still works
    out = call(backend)(*inputs)
    with pytest.raises(NotImplementedError, match=f"{op}: .*no double backward.*backend='reference'"):
        torch.autograd.grad(out.square().sum(), inputs, create_graph=True)


def test_a_gradient_penalty_matches_the_reference_or_raises():
    # the case: a gradient penalty on spike_linear's weight gradient
    call, inputs = _inputs("spike_linear")
    penalty = {}
    for backend in ("reference", "cpp"):
        out = call(backend)(*inputs)
        (gw,) = torch.autograd.grad(out.square().sum(), inputs[1], create_graph=backend == "reference")
        penalty[backend] = gw.square().sum()
    torch.testing.assert_close(penalty["cpp"], penalty["reference"].detach())
    (second,) = torch.autograd.grad(penalty["reference"], inputs[1])
    assert torch.isfinite(second).all()
