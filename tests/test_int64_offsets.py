"""64-bit element offsets of every Triton kernel, shown under the interpreter past 2^31 elements.

The study's tensors reach 2^31 elements (visual M1 at batch 128: 128 x 25 x 128 x 34 x 34 = 473M
per LIF layer, spikes [T * B, 147968] into fc1, long sequences), and a kernel that forms an
element offset as an int32 product wraps there and reads or writes some other address. Each case
gives a kernel tensors of more than 2^31 elements, huge in one dimension and tiny in the others
(zeros mapped from sparse files, or row strides into one: tests/_huge.py), runs only the last
programs of every launch (those with the largest offsets) and compares what they wrote with the
reference on the slice they cover; inputs hold values only where those programs read. A wrapped
offset shows as an access outside every argument tensor (raised, not a crash) or, where it lands
in another argument's mapping, as wrong values; and every case checks that each of its kernels
touched an argument past element 2^31. The whole module runs in about 15 s on two cores, with
about 0.3 GB resident beyond the imports (the column sums read one page of every weight row).

The launchers of kernels/<op>.py are called directly: the public ops check their data first
(finiteness, spike counts), which would read every page of an 8 GB tensor.

Tolerances: float32 values rtol = atol = 1e-5; spikes, ELL counts and the spiking Hopfield recall
(bit-exact by design) exactly.

Offsets kernel by kernel: what is 64-bit, and what stays 32-bit because it cannot pass 2^31.
- spike_linear, compaction and gather: the row (program id) is int64, so is every row offset;
  a gathered row's index is widened before it multiplies the stride. Positions within a row stay
  int32 (< in_features, out_features, or the rows T * B in the weight gradient's compaction of
  the transposed spikes): the ELL lists store them as int32, so one row of 2^31 elements is out
  of reach by design.
- spike_conv2d: the gather's program id (output pixel) is int64 and every offset derives from it;
  a weight row's channel is widened before it multiplies. The weight gradient's weight row is
  int64, so is every image plane; the image index of its loop is widened before it multiplies
  H_out (fixed with this test: it wrapped once N * H_out passed 2^31). The pixel within a plane
  (< H * W, itself an int32 product) stays int32, like the ELL index that holds it: a plane of
  2^31 pixels is out of reach by design.
- lif, hgrn_scan: the neuron offset is int64 (fixed with this test, for 2^31 neurons or more);
  time steps advance the pointers by n (64-bit pointer arithmetic). lif's backward forms
  (steps - 1) * n and i * n in int64 (fixed with this test: the last step's offsets wrapped once
  T * n passed 2^31, already at T = 2 with 2^30 neurons); hgrn's backward takes that offset from
  the host, 64-bit where it needs it.
- modern_hopfield: the query, pattern and product block starts are widened before the multiply
  (fixed with this test: they wrapped at 2^31 queries or more), so are the patterns and the rows
  of the product's loop. Feature and value columns (< dim, dim_v) stay int32. The dP and dV
  products sum over all queries in every program (n_q / 16 steps, out of the interpreter's reach
  at these sizes): their row offsets are those of the strided product case here.
- spiking_hopfield: the column sums advance a row pointer by n; the recall's batch row and event
  rows are int64, and a step's stride comes from the host. Neuron indices stay int32 (< n, and
  the weight has n^2 elements).
"""

import pytest
import torch
import torch.nn.functional as F
from _huge import huge_zeros, last_programs

from sparsespike import lif
from sparsespike._backend import require_triton_kernels, triton_interpreted
from sparsespike.ops.hgrn_scan import hgrn_scan_reference
from sparsespike.ops.lif import _checked_config
from sparsespike.ops.spiking_hopfield import spiking_hopfield_recall_reference

pytestmark = pytest.mark.skipif(
    not triton_interpreted(), reason="runs the kernels' last programs under the Triton interpreter (TRITON_INTERPRET=1)"
)

TOL = dict(rtol=1e-5, atol=1e-5)
PAST = 2**31


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _past(reached: dict, *kernels: str) -> None:
    for name in kernels:
        assert reached.get(name, 0) >= PAST, f"{name} reached element {reached.get(name)}, not 2^31"


def _tail(shape, start: int, values: torch.Tensor) -> torch.Tensor:
    """huge_zeros(shape) holding ``values`` in [..., start:] (the part the last programs read)."""
    t = huge_zeros(shape)
    t[..., start:] = values
    return t


# --------------------------------------------------------------------------- spike_linear


def test_spike_linear_forward_spikes_past_2_31():
    """Spikes [14600, 147968] (the study's fc1 width, 2.16e9 elements): the last row's compaction
    and gather."""
    kernels = require_triton_kernels("spike_linear")
    rows, fan_in, fan_out = 14600, 147968, 8
    g = _gen(0)
    spikes = huge_zeros((rows, fan_in), torch.bool)
    spikes[-1, [0, 5, 1031, 77777, fan_in - 1]] = True
    weight_t, bias = torch.randn(fan_in, fan_out, generator=g), torch.randn(fan_out, generator=g)
    with last_programs(1) as reached:
        out, nnz = kernels.forward(spikes, weight_t, bias)
    torch.testing.assert_close(out[-1], spikes[-1].float() @ weight_t + bias, **TOL)
    assert int(nnz) == 5
    _past(reached, "_compact_rows_kernel", "_gather_rows_kernel")


def test_spike_linear_forward_weight_past_2_31():
    """A weight of 2^31 + 2^18 elements (W^T [2^17 + 16, 2^14]): gathered rows past 2^31."""
    kernels = require_triton_kernels("spike_linear")
    fan_in, fan_out = 2**17 + 16, 2**14
    active = [3, 2**17, 2**17 + 7, fan_in - 1]
    weight_t = huge_zeros((fan_in, fan_out))
    weight_t[active] = torch.randn(len(active), fan_out, generator=_gen(1))
    spikes = torch.zeros(1, fan_in, dtype=torch.bool)
    spikes[0, active] = True
    with last_programs(1) as reached:
        out, _ = kernels.forward(spikes, weight_t, None)
    torch.testing.assert_close(out[0], weight_t[active].sum(0), **TOL)
    _past(reached, "_gather_rows_kernel")


def test_spike_linear_weight_gradient_past_2_31():
    """The weight gradient [2^17 + 16, 2^14] of spikes [4, 2^17 + 16]: its last rows, past 2^31."""
    kernels = require_triton_kernels("spike_linear")
    rows, fan_in, fan_out = 4, 2**17 + 16, 2**14
    g = _gen(2)
    spikes = torch.zeros(rows, fan_in, dtype=torch.bool)
    spikes[:, -2:] = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 1]], dtype=torch.bool)
    grad_out = torch.randn(rows, fan_out, generator=g)
    with last_programs(2) as reached:
        grad_weight_t = kernels.grad_weight_t(grad_out, spikes)
    torch.testing.assert_close(grad_weight_t[-2:], spikes[:, -2:].t().float() @ grad_out, **TOL)
    _past(reached, "_gather_rows_kernel")


def test_spike_linear_masked_input_gradient_mask_past_2_31():
    """A gradient mask [14600, 147968] (2.16e9 elements): the last row's compaction and dot products."""
    kernels = require_triton_kernels("spike_linear")
    rows, fan_in, fan_out = 14600, 147968, 8
    g = _gen(3)
    mask = huge_zeros((rows, fan_in), torch.bool)
    listed = [0, 33, 1031, 77777, fan_in - 1]
    mask[-1, listed] = True
    grad_out, weight = torch.randn(rows, fan_out, generator=g), torch.randn(fan_out, fan_in, generator=g)
    with last_programs(1) as reached:
        grad_in = kernels.grad_input_masked(grad_out, weight, mask)
    want = torch.zeros(fan_in)
    want[listed] = grad_out[-1] @ weight[:, listed]
    torch.testing.assert_close(grad_in[-1], want, **TOL)
    _past(reached, "_compact_rows_kernel", "_masked_dot_kernel")


def test_spike_linear_masked_input_gradient_weight_past_2_31():
    """A weight [2^14, 2^17 + 16] (2^31 + 2^18 elements): listed inputs' columns past 2^31."""
    kernels = require_triton_kernels("spike_linear")
    fan_out, fan_in = 2**14, 2**17 + 16
    listed = [3, 2**17, fan_in - 1]
    weight = huge_zeros((fan_out, fan_in))
    weight[:, listed] = torch.randn(fan_out, len(listed), generator=_gen(4))
    mask = torch.zeros(1, fan_in, dtype=torch.bool)
    mask[0, listed] = True
    grad_out = torch.randn(1, fan_out, generator=_gen(5))
    with last_programs(1) as reached:
        grad_in = kernels.grad_input_masked(grad_out, weight, mask)
    torch.testing.assert_close(grad_in[0, listed], grad_out[0] @ weight[:, listed], **TOL)
    assert int(torch.count_nonzero(grad_in)) <= len(listed)
    _past(reached, "_masked_dot_kernel")


# --------------------------------------------------------------------------- spike_conv2d


def test_spike_conv2d_forward_past_2_31():
    """Channels-last spikes [116200, 16, 34, 34] and an output of 16 channels (2.15e9 elements
    each), 3 x 3, padding 1: the last image's last two output rows."""
    kernels = require_triton_kernels("spike_conv2d")
    n, c_in, size, c_out = 116200, 16, 34, 16
    g = _gen(3)
    spikes = huge_zeros((n, size, size, c_in), torch.bool).permute(0, 3, 1, 2)  # NCHW view, channels last
    spikes[-1, :, -2:, :] = torch.rand(c_in, 2, size, generator=g) < 0.3
    weight = torch.randn(c_out, c_in, 3, 3, generator=g)
    bias = torch.randn(c_out, generator=g)
    weight_t = weight.permute(1, 2, 3, 0).reshape(-1, c_out).contiguous()
    with last_programs(2 * size) as reached:  # the last two rows of pixels
        out, per_pixel = kernels.forward(spikes, weight_t, bias, (3, 3), (1, 1), (1, 1), (1, 1), (size, size))
    expected = F.conv2d(spikes[-1:].float(), weight, bias, padding=1)  # rows above hold no spike
    torch.testing.assert_close(out[-1, :, -2:], expected[0, :, -2:], **TOL)
    assert torch.equal(per_pixel[-1, -2:], spikes[-1, :, -2:].sum(0, dtype=torch.int32))
    _past(reached, "_compact_rows_kernel", "_conv_gather_kernel")


def test_spike_conv2d_forward_weight_past_2_31():
    """A weight of 2.4e9 elements (16384 x 16400 x 3 x 3) on spikes [1, 16400, 1, 1], padding 1:
    the centre tap's rows of the last channels start past 2^31."""
    kernels = require_triton_kernels("spike_conv2d")
    c_in, c_out = 2**14 + 16, 2**14
    active = [3, 15000, c_in - 100, c_in - 1]
    centre = [9 * c + 4 for c in active]  # weight_t row (c, 1, 1)
    weight_t = huge_zeros((9 * c_in, c_out))
    weight_t[centre] = torch.randn(len(active), c_out, generator=_gen(10))
    spikes = torch.zeros(1, c_in, 1, 1, dtype=torch.bool)
    spikes[0, active] = True
    with last_programs(1) as reached:
        out, _ = kernels.forward(spikes, weight_t, None, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    torch.testing.assert_close(out[0, :, 0, 0], weight_t[centre].sum(0), **TOL)  # one image pixel: the centre tap
    _past(reached, "_conv_gather_kernel")


def test_spike_conv2d_weight_gradient_past_2_31():
    """The weight gradient [2^21 * 3 * 3, 128] of spikes [1, 2^21, 1, 1], padding 1: its last two
    channels' rows (past 2^31); on a one-pixel image only the centre tap sees an input."""
    kernels = require_triton_kernels("spike_conv2d")
    c_in, c_out = 2**21, 128
    spikes = torch.zeros(1, c_in, 1, 1, dtype=torch.bool)
    spikes[0, -1] = True
    grad_out = torch.randn(1, c_out, 1, 1, generator=_gen(11))
    with last_programs(18) as reached:  # 18 rows of the gradient: (c, ky, kx) of the last two channels
        grad_weight_t = kernels.grad_weight_t(grad_out, spikes, (3, 3), (1, 1), (1, 1), (1, 1))
    expected = torch.zeros(18, c_out)
    expected[9 + 4] = grad_out[0, :, 0, 0]  # channel c_in - 1, tap (1, 1)
    torch.testing.assert_close(grad_weight_t[-18:], expected, **TOL)
    _past(reached, "_conv_grad_weight_kernel")


def test_spike_conv2d_weight_gradient_images_past_2_31(monkeypatch):
    """Weight gradient of spikes [3, 1, 2^30 + 8, 1], a 3 x 1 kernel, padding (1, 0): image 2's
    plane and output rows start past 2^31 (N * H_out wrapped in int32 before the fix). The ELL
    lists are given (the compaction, covered above, would walk 2^30 pixels per program)."""
    kernels = require_triton_kernels("spike_conv2d")
    n, height, window = 3, 2**30 + 8, 32
    rows = [height - 13, height - 5, height - 2, height - 1]
    spikes = huge_zeros((n, 1, height, 1), torch.bool)
    spikes[2, 0, rows, 0] = True
    grad_out = huge_zeros((n, 1, height, 1))
    grad_out[2, 0, -window:, 0] = torch.randn(window, generator=_gen(4))
    idx, val = huge_zeros((n, height), torch.int32), huge_zeros((n, height))
    idx[2, : len(rows)], val[2, : len(rows)] = torch.tensor(rows, dtype=torch.int32), 1.0
    cnt = torch.tensor([0, 0, len(rows)], dtype=torch.int32)
    monkeypatch.setattr(kernels, "compact_rows", lambda spikes, dtype: (idx, val, cnt))
    with last_programs(3) as reached:
        grad_weight_t = kernels.grad_weight_t(grad_out, spikes, (3, 1), (1, 1), (1, 0), (1, 1))
    x, g = spikes[2:, :, -window:].float(), grad_out[2:, :, -window:]  # the events sit inside the window
    expected = torch.nn.grad.conv2d_weight(x, (1, 1, 3, 1), g, padding=(1, 0))
    torch.testing.assert_close(grad_weight_t, expected.permute(1, 2, 3, 0).reshape(-1, 1), **TOL)
    _past(reached, "_conv_grad_weight_kernel")


# --------------------------------------------------------------------------- lif, hgrn_scan

# T * n past 2^31 with n < 2^31 (the backward's (steps - 1) * n), then n itself past 2^31
STEPS_NEURONS = pytest.mark.parametrize("steps, neurons", [(4, 2**30 + 200), (1, 2**31 + 200)], ids=["Tn", "n"])


@STEPS_NEURONS
@pytest.mark.parametrize("convention", ["snntorch", "spikingjelly"])
def test_lif_past_2_31(steps, neurons, convention):
    """Forward and backward of the last two programs' neurons (spikes exact)."""
    kernels = require_triton_kernels("lif")
    cfg = _checked_config(convention, "subtract", False, "fast_sigmoid", None, None, True)
    lo = (kernels.grid(neurons)[0] - 2) * kernels.BLOCK
    k, g = neurons - lo, _gen(5)
    current = _tail((steps, neurons), lo, torch.randn(steps, k, generator=g) * 1.5)
    beta = _tail((neurons,), lo, torch.rand(k, generator=g))
    threshold = _tail((neurons,), lo, torch.rand(k, generator=g) + 0.5)
    v0 = _tail((neurons,), lo, torch.randn(k, generator=g))
    grad_spikes, grad_trace = (_tail((steps, neurons), lo, torch.randn(steps, k, generator=g)) for _ in range(2))
    grad_v = _tail((neurons,), lo, torch.randn(k, generator=g))
    with last_programs(2) as reached:
        spikes, trace, v_final, band = kernels.forward(current, beta, threshold, v0, cfg, 0.3)
        grads = kernels.backward(grad_spikes, grad_trace, grad_v, current, trace, beta, threshold, v0, cfg)
    inputs = [t[..., lo:].clone().requires_grad_() for t in (current, beta, threshold, v0)]
    ref = lif(
        *inputs,
        reset="subtract",
        detach_reset=False,
        surrogate="fast_sigmoid",
        convention=convention,
        return_trace=True,
        backend="reference",
    )
    loss = (ref.spikes * grad_spikes[:, lo:]).sum() + (ref.trace * grad_trace[:, lo:]).sum()
    ref_grads = torch.autograd.grad(loss + (ref.membrane * grad_v[lo:]).sum(), inputs)
    assert torch.equal(spikes[:, lo:], ref.spikes)
    torch.testing.assert_close(trace[:, lo:], ref.trace.detach(), **TOL)
    torch.testing.assert_close(v_final[lo:], ref.membrane.detach(), **TOL)
    assert torch.equal(band[:, lo:], (trace[:, lo:] - threshold[lo:]).abs() < 0.3)  # the band output too
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got[..., lo:], want, **TOL)
    _past(reached, "_lif_forward_kernel", "_lif_backward_kernel")


@STEPS_NEURONS
def test_hgrn_scan_past_2_31(steps, neurons):
    """Forward and backward of the last two programs' neurons."""
    kernels = require_triton_kernels("hgrn_scan")
    lo = (kernels.grid(neurons)[0] - 2) * kernels.BLOCK
    k, g = neurons - lo, _gen(6)
    x = _tail((steps, neurons), lo, torch.randn(steps, k, generator=g))
    gate = _tail((steps, neurons), lo, -torch.rand(steps, k, generator=g))
    h0 = _tail((neurons,), lo, torch.randn(k, generator=g))
    grad_h = _tail((steps, neurons), lo, torch.randn(steps, k, generator=g))
    grad_h_final = _tail((neurons,), lo, torch.randn(k, generator=g))
    with last_programs(2) as reached:
        h, h_final = kernels.forward(x, gate, h0)
        grads = kernels.backward(grad_h, grad_h_final, gate, h, h0)
    inputs = [t[..., lo:].clone().requires_grad_() for t in (x, gate, h0)]
    ref_h, ref_h_final = hgrn_scan_reference(*inputs)
    loss = (ref_h * grad_h[:, lo:]).sum() + (ref_h_final * grad_h_final[lo:]).sum()
    ref_grads = torch.autograd.grad(loss, inputs)
    torch.testing.assert_close(h[:, lo:], ref_h.detach(), **TOL)
    torch.testing.assert_close(h_final[lo:], ref_h_final.detach(), **TOL)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got[..., lo:], want, **TOL)
    _past(reached, "_hgrn_forward_kernel", "_hgrn_backward_kernel")


# --------------------------------------------------------------------------- modern_hopfield


@pytest.mark.parametrize(
    "n_q, dim, n_k, dim_v, pattern_stride",
    [(2**27 + 40, 16, 17, 16, 2**27), (2**31 + 40, 1, 2, 1, None)],
    ids=["rows", "queries"],
)
def test_modern_hopfield_past_2_31(n_q, dim, n_k, dim_v, pattern_stride, monkeypatch):
    """The last 40 queries' output, log-sum-exp, scores and dq, for query [n_q, dim] past 2^31
    elements: "rows" with n_q * dim past 2^31 and patterns and values that are row-strided views
    (the launchers read row strides) whose last row starts at 2^31; "queries" with n_q itself past
    2^31. dP and dV (a loop over all queries in one program) are not run."""
    kernels = require_triton_kernels("modern_hopfield")
    k, scale, g = 40, 0.5, _gen(7)
    query = huge_zeros((n_q, dim))
    query[-k:] = torch.randn(k, dim, generator=g)
    grad_out = huge_zeros((n_q, dim_v))
    grad_out[-k:] = torch.randn(k, dim_v, generator=g)
    if pattern_stride is None:
        patterns, values = torch.randn(n_k, dim, generator=g), torch.randn(n_k, dim_v, generator=g)
    else:
        rows = huge_zeros((n_k, pattern_stride))
        rows[:, : dim + dim_v] = torch.randn(n_k, dim + dim_v, generator=g)
        patterns, values = rows[:, :dim], rows[:, dim : dim + dim_v]
    product = kernels._product
    monkeypatch.setattr(kernels, "_product", lambda x, y, dtype: product(x, y, dtype) if len(x) <= n_k else None)
    with last_programs(2) as reached:
        out, lse = kernels.forward(query, patterns, values, scale)
        dq, d_patterns, d_values = kernels.backward(grad_out, query, patterns, values, out, lse, scale)
    q = query[-k:].clone().requires_grad_()
    scores = scale * (q @ patterns.t())
    ref = torch.softmax(scores, dim=-1) @ values
    (ref_dq,) = torch.autograd.grad((ref * grad_out[-k:]).sum(), q)
    torch.testing.assert_close(out[-k:], ref.detach(), **TOL)
    torch.testing.assert_close(lse[-k:], torch.logsumexp(scores, dim=-1).detach(), **TOL)
    torch.testing.assert_close(dq[-k:], ref_dq, **TOL)
    assert d_patterns is None and d_values is None
    _past(reached, "_forward_kernel", "_backward_scores_kernel", "_product_kernel")


def test_modern_hopfield_product_rows_past_2_31():
    """The product kernel's loop over rows, on strided operands whose row 32 starts at 2^31."""
    kernels = require_triton_kernels("modern_hopfield")
    rows, stride = 33, 2**26
    base = huge_zeros((rows, stride))
    base[:, :32] = torch.randn(rows, 32, generator=_gen(8))
    x, y = base[:, :16], base[:, 16:32]
    with last_programs(1) as reached:
        out = kernels._product(x, y, torch.float32)
    torch.testing.assert_close(out, x.t() @ y, **TOL)
    _past(reached, "_product_kernel")


# --------------------------------------------------------------------------- spiking_hopfield


def test_spiking_hopfield_recall_past_2_31():
    """A weight [46344, 46344] (2^31 + 283k elements), nonzero only among the last 64 neurons,
    and a cue among them: the last column block's sums and the recall equal the reference's on
    those 64 neurons, bit for bit; the other neurons stay silent at zero membrane."""
    kernels = require_triton_kernels("spiking_hopfield")
    n, k, g = 46344, 64, _gen(9)
    sub = torch.randn(k, k, generator=g) * 0.5
    weight = huge_zeros((n, n))
    weight[-k:, -k:] = sub
    cue = torch.zeros(1, n)
    cue[0, n - k + torch.randperm(k, generator=g)[:8]] = 1.0
    with last_programs(1) as reached:
        spikes, v = kernels.recall(weight, cue, 2, 0.9, 1.0, kernels.SUBTRACT)
    ref_spikes, ref_v = spiking_hopfield_recall_reference(sub, cue[:, -k:], 2, 0.9, 1.0, "subtract")
    assert torch.equal(spikes[..., -k:], ref_spikes) and torch.equal(v[:, -k:], ref_v)
    assert not spikes[..., :-k].any() and not v[:, :-k].any()
    _past(reached, "_column_sums_kernel", "_recall_kernel")


def test_spiking_hopfield_recall_batch_past_2_31():
    """The recall kernel on a cue [2^27 + 8, 16] (batch rows past 2^31 elements), launched as
    recall() launches it: recall() itself copies the whole cue into its spike buffer."""
    kernels = require_triton_kernels("spiking_hopfield")
    batch, n, steps, g = 2**27 + 8, 16, 3, _gen(12)
    weight = torch.randn(n, n, generator=g)
    cue = (torch.rand(1, n, generator=g) < 0.5).float()
    spikes, v = huge_zeros((steps + 1, batch, n)), huge_zeros((batch, n))
    spikes[0, -1:] = cue
    params, total, block = torch.tensor([0.9, 1.0]), torch.zeros(n), kernels.block(n)
    with last_programs(1) as reached:
        kernels._column_sums_kernel[kernels.column_sums_grid(n)](weight, total, n, BLOCK=block, **kernels.EXACT)
        kernels._recall_kernel[kernels.recall_grid(batch)](
            weight,
            total,
            params,
            spikes,
            v,
            huge_zeros((batch, n), torch.int32),
            n,
            batch * n,
            steps,
            RESET=kernels.SUBTRACT,
            BLOCK=block,
            **kernels.EXACT,
        )
    ref_spikes, ref_v = spiking_hopfield_recall_reference(weight, cue, steps, 0.9, 1.0, "subtract")
    assert torch.equal(spikes[1:, -1:], ref_spikes) and torch.equal(v[-1:], ref_v)
    _past(reached, "_recall_kernel")
