"""Bad input to spike_linear: a TypeError/ValueError naming the argument, on every backend,
and never a crash or a partial result."""

import pytest
import torch

import sparsespike
from sparsespike import spike_linear

BACKENDS = ["reference", "cpp", "triton", "auto"]


def layer(in_f=8, out_f=4, dtype=torch.float32):
    return torch.randn(out_f, in_f, dtype=dtype), torch.randn(out_f, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_features_mismatch(backend):
    w, b = layer()
    with pytest.raises(ValueError, match="in_features=8"):
        spike_linear(torch.zeros(3, 7), w, b, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(8,), (2, 4, 8)])
def test_weight_not_2d(backend, shape):
    with pytest.raises(ValueError, match="weight must be 2-D"):
        spike_linear(torch.zeros(3, 8), torch.randn(shape), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
def test_integer_weight(backend, dtype):
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        spike_linear(torch.zeros(3, 8), torch.ones(4, 8, dtype=dtype), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spike_dtype(backend):
    w, b = layer()
    with pytest.raises(TypeError, match="spikes must be bool, uint8 or the weight's dtype"):
        spike_linear(torch.zeros(3, 8, dtype=torch.int32), w, b, backend=backend)
    with pytest.raises(TypeError, match="spikes must be bool, uint8 or the weight's dtype"):
        spike_linear(torch.zeros(3, 8, dtype=torch.float64), w, b, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias(backend):
    w, _ = layer()
    with pytest.raises(ValueError, match=r"bias must have shape \[4\]"):
        spike_linear(torch.zeros(3, 8), w, torch.zeros(5), backend=backend)
    with pytest.raises(TypeError, match="bias must have the weight's dtype"):
        spike_linear(torch.zeros(3, 8), w, torch.zeros(4, dtype=torch.float64), backend=backend)
    with pytest.raises(TypeError, match="bias must be a torch.Tensor"):
        spike_linear(torch.zeros(3, 8), w, [0.0] * 4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_not_tensors(backend):
    w, _ = layer()
    with pytest.raises(TypeError, match="spikes must be a torch.Tensor"):
        spike_linear([[0.0] * 8], w, backend=backend)
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        spike_linear(torch.zeros(3, 8), w.numpy(), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size(backend):
    w, b = layer()
    with pytest.raises(ValueError, match="spikes has zero elements"):
        spike_linear(torch.zeros(0, 8), w, b, backend=backend)
    with pytest.raises(ValueError, match="weight has zero elements"):
        spike_linear(torch.zeros(3, 0), torch.zeros(4, 0), backend=backend)
    with pytest.raises(ValueError, match="weight has zero elements"):
        spike_linear(torch.zeros(3, 8), torch.zeros(0, 8), backend=backend)
    with pytest.raises(ValueError, match="at least one dimension"):
        spike_linear(torch.tensor(1.0), w, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_spikes(backend, bad):
    w, b = layer()
    spikes = torch.zeros(40, 8)
    spikes[37, 5] = bad  # late in the input: nothing may have been written before the check
    with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
        spike_linear(spikes, w, b, backend=backend)


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_non_finite_spikes_dense_path(backend):
    sparsespike.set_crossover("cpu", forward_density=0.0)  # auto takes the dense GEMM
    spikes = torch.ones(10, 8)
    spikes[3, 3] = float("nan")
    with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
        spike_linear(spikes, *layer(), backend=backend)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        spike_linear(torch.zeros(3, 8), layer()[0], backend="cuda")


def test_cpp_backend_rejects_half_weights():
    w = torch.randn(4, 8, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="backend='cpp' supports float32 and float64"):
        spike_linear(torch.zeros(3, 8, dtype=torch.bool), w, backend="cpp")
    # auto falls back to the reference for dtypes the C++ kernel lacks
    out = spike_linear(torch.ones(3, 8, dtype=torch.bool), w, backend="auto")
    torch.testing.assert_close(out, w.sum(1).expand(3, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_half_precision_on_cpu_uses_the_reference(backend, dtype):
    w = torch.randn(4, 8, dtype=dtype)
    spikes = (torch.rand(3, 8) < 0.5).to(dtype)
    with sparsespike.count_synops() as counter:
        out = spike_linear(spikes, w, backend=backend)
    torch.testing.assert_close(out, torch.nn.functional.linear(spikes, w))
    assert counter.total() == int(torch.count_nonzero(spikes)) * 4
    spikes[1, 1] = float("nan")
    with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
        spike_linear(spikes, w, backend=backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs two devices")
def test_devices_differ():
    w, b = layer()
    with pytest.raises(ValueError, match="spikes is on cuda:0 but weight is on cpu"):
        spike_linear(torch.zeros(3, 8, device="cuda"), w, b)


def test_devices_differ_meta():
    # a second device without CUDA: the meta device
    w, b = layer()
    with pytest.raises(ValueError, match="spikes is a meta tensor"):
        spike_linear(torch.zeros(3, 8, device="meta"), w, b)
    with pytest.raises(ValueError, match="bias is a meta tensor"):
        spike_linear(torch.zeros(3, 8), w, torch.zeros(4, device="meta"))


@pytest.mark.cuda
def test_cpp_backend_on_non_cpu_device():
    with pytest.raises(ValueError, match="backend='cpp' runs on CPU tensors only"):
        spike_linear(torch.zeros(3, 8, device="cuda"), torch.zeros(4, 8, device="cuda"), backend="cpp")


def test_meta_tensors_are_refused_by_name():
    with pytest.raises(ValueError, match="spikes is a meta tensor"):
        spike_linear(torch.zeros(3, 8, device="meta"), torch.zeros(4, 8, device="meta"), backend="cpp")


class TestExtensionBoundary:
    """The C++ module validates on its own, before touching memory, whoever calls it."""

    def test_shapes_and_dtypes(self):
        from sparsespike import _C

        tile = _C.spike_linear_tile_bytes // 4  # float32 columns per packed tile
        spikes = torch.zeros(3, 8).numpy()
        packed = torch.zeros(1, 8, tile).numpy()
        out = torch.zeros(3, 4).numpy()
        with pytest.raises(ValueError, match="packed_weight has 7 inputs"):
            _C.spike_linear_forward(spikes, torch.zeros(1, 7, tile).numpy(), None, out, 1)
        with pytest.raises(ValueError, match="out must have shape"):
            _C.spike_linear_forward(spikes, packed, None, torch.zeros(2, 4).numpy(), 1)
        with pytest.raises(TypeError, match="out must have dtype"):
            _C.spike_linear_forward(spikes, packed, None, torch.zeros(3, 4, dtype=torch.float64).numpy(), 1)
        with pytest.raises(ValueError, match="packed_weight does not match"):
            _C.spike_linear_forward(spikes, torch.zeros(2, 8, tile).numpy(), None, out, 1)
        with pytest.raises(ValueError, match="bias must have shape"):
            _C.spike_linear_forward(spikes, packed, torch.zeros(5).numpy(), out, 1)
        with pytest.raises(TypeError, match="spikes must be bool, uint8"):
            _C.spike_linear_forward(spikes.astype("int32"), packed, None, out, 1)
        with pytest.raises(ValueError, match="must be C-contiguous"):
            _C.spike_linear_forward(torch.zeros(8, 3).numpy().T, packed, None, out, 1)
        with pytest.raises(ValueError, match="grad_out has 2 rows"):
            _C.spike_linear_grad_weight(spikes, torch.zeros(2, 4).numpy(), torch.zeros(8, 4).numpy(), 1)
        readonly = torch.zeros(3, 4).numpy()
        readonly.setflags(write=False)
        with pytest.raises(ValueError, match="out must be writable"):
            _C.spike_linear_forward(spikes, packed, None, readonly, 1)

    def test_input_stationary_forward(self):
        from sparsespike import _C

        tile = _C.spike_linear_tile_bytes // 4
        spikes = torch.zeros(3, 8).numpy()
        packed = torch.zeros(1, 8, tile).numpy()
        out = torch.full((3, 4), 7.0).numpy()
        assert _C.spike_linear_forward_by_input(spikes, packed, None, out, 1) == 0 and (out == 0).all()
        with pytest.raises(ValueError, match="packed_weight has 7 inputs"):
            _C.spike_linear_forward_by_input(spikes, torch.zeros(1, 7, tile).numpy(), None, out, 1)
        with pytest.raises(ValueError, match="out must have shape"):
            _C.spike_linear_forward_by_input(spikes, packed, None, torch.zeros(2, 4).numpy(), 1)
        bad = torch.zeros(3, 8)
        bad[2, 5] = float("nan")
        out[:] = 7.0
        with pytest.raises(ValueError, match="spikes contains NaN or Inf"):
            _C.spike_linear_forward_by_input(bad.numpy(), packed, None, out, 1)
        assert (out == 7.0).all()  # validated before writing

    def test_lif_arguments(self):
        from sparsespike import _C

        steps, n = 4, 6
        z = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype).numpy()  # noqa: E731
        params = (z(n), torch.ones(n).numpy(), z(n))  # beta, threshold, v0
        flags = (0, 0, True, 0, 25.0, float("inf"), True)  # ..., surrogate_param, grad_band, decay_input
        grads = lambda: (z(steps, n), z(n), z(n), z(n))  # noqa: E731
        with pytest.raises(ValueError, match="threshold must have shape"):
            _C.lif_forward(z(steps, n), z(n), z(n + 1), z(n), *flags, z(steps, n), None, z(n), None, 0.0, 1)
        with pytest.raises(TypeError, match="spikes must have dtype"):
            _C.lif_forward(z(steps, n), *params, *flags, z(steps, n, dtype=torch.float64), None, z(n), None, 0.0, 1)
        bad = z(steps, n)
        bad[1, 2] = float("inf")
        with pytest.raises(ValueError, match="current contains NaN or Inf"):
            _C.lif_forward(bad, *params, *flags, z(steps, n), None, z(n), None, 0.0, 1)
        with pytest.raises(ValueError, match="needs the trace or the current"):
            _C.lif_backward(z(steps, n), None, None, None, None, *params, *flags, *grads(), 1)
        with pytest.raises(ValueError, match="grad_spikes must have shape"):
            _C.lif_backward(z(steps + 1, n), None, None, z(steps, n), None, *params, *flags, *grads(), 1)
        with pytest.raises(ValueError, match="grad_trace must have shape"):
            _C.lif_backward(None, z(n + 1), None, z(steps, n), None, *params, *flags, *grads(), 1)
        # the recomputing backward rejects a non-finite current too
        with pytest.raises(ValueError, match="current contains NaN or Inf"):
            _C.lif_backward(z(steps, n), None, None, bad, None, *params, *flags, *grads(), 1)
        with pytest.raises(ValueError, match="grad_current must have at least one step"):
            _C.lif_backward(None, None, None, z(0, n), None, *params, *flags, z(0, n), z(n), z(n), z(n), 1)
        with pytest.raises(ValueError, match="current must have at least one step"):
            _C.lif_forward(z(0, n), *params, *flags, z(0, n), None, z(n), None, 0.0, 1)
        with pytest.raises(TypeError, match="band must be bool or uint8"):
            _C.lif_forward(z(steps, n), *params, *flags, z(steps, n), None, z(n), z(steps, n), 0.2, 1)
        with pytest.raises(ValueError, match="band must have shape"):
            _C.lif_forward(
                z(steps, n), *params, *flags, z(steps, n), None, z(n), z(steps, n + 1, dtype=torch.bool), 0.2, 1
            )
        with pytest.raises(ValueError, match="band_width must be > 0"):
            _C.lif_forward(z(steps, n), *params, *flags, z(steps, n), None, z(n), z(steps, n, dtype=torch.bool), 0.0, 1)
        for band in (0.0, -1.0, float("nan")):
            with pytest.raises(ValueError, match="grad_band must be > 0"):
                _C.lif_backward(
                    z(steps, n), None, None, z(steps, n), None, *params, *flags[:5], band, True, *grads(), 1
                )
        with pytest.raises(ValueError, match="current is needed for the spikingjelly"):
            _C.lif_backward(
                z(steps, n), None, None, None, z(steps, n), *params, 1, 0, True, 0, 25.0, 0.2, True, *grads(), 1
            )

    def test_masked_input_gradient_arguments(self):
        from sparsespike import _C

        rows, n_in, n_out = 3, 5, 4
        z = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype).numpy()  # noqa: E731
        mask = torch.ones(rows, n_in, dtype=torch.bool).numpy()
        packed = _C.spike_linear_tile_bytes // 4  # floats per tile
        ok = (mask, z(rows, n_out), z(1, n_in, packed), z(rows, n_in), 1)
        _C.spike_linear_grad_input_masked(*ok)
        with pytest.raises(TypeError, match="grad_mask must be bool or uint8"):
            _C.spike_linear_grad_input_masked(z(rows, n_in), *ok[1:])
        with pytest.raises(ValueError, match="grad_out has 4 rows but grad_mask has 3"):
            _C.spike_linear_grad_input_masked(mask, z(rows + 1, n_out), *ok[2:])
        with pytest.raises(ValueError, match="packed_weight must be a C-contiguous"):
            _C.spike_linear_grad_input_masked(mask, ok[1], z(n_out, n_in), *ok[3:])
        with pytest.raises(ValueError, match="packed_weight does not match"):
            _C.spike_linear_grad_input_masked(mask, ok[1], z(2, n_in, packed), *ok[3:])
        with pytest.raises(ValueError, match="grad_input must have shape"):
            _C.spike_linear_grad_input_masked(*ok[:3], z(rows, n_in + 1), 1)
        with pytest.raises(TypeError, match="grad_input must have dtype"):
            _C.spike_linear_grad_input_masked(*ok[:3], z(rows, n_in, dtype=torch.float64), 1)

    def test_unaligned_arrays_are_refused(self):
        import numpy as np

        from sparsespike import _C

        raw = np.zeros(4 * 12 + 1, dtype=np.uint8)
        unaligned = np.frombuffer(raw.data, dtype=np.float32, count=12, offset=1).reshape(3, 4)
        assert not unaligned.flags.aligned
        with pytest.raises(ValueError, match="spikes must be aligned"):
            _C.spikes_count(unaligned, 1)
