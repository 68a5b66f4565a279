"""Spiking Hopfield attractor: Hebbian storage, recall by every backend against the reference
(identical spike trains and membranes, bit for bit), the acceptance criterion of issue 4, and
bad input at the Python and C++ boundaries."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import sparsespike
from sparsespike import hebbian_weight, pattern_overlap, spiking_hopfield_recall
from sparsespike.nn import SpikingHopfield
from sparsespike.ops.spiking_hopfield import RESETS, spiking_hopfield_recall_reference


def random_patterns(p, n, seed, density=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(p, n, generator=g) < density


def flip(patterns, fraction, seed):
    g = torch.Generator().manual_seed(seed)
    return patterns ^ (torch.rand(patterns.shape, generator=g) < fraction)


def generic_case(n, batch, seed, dtype=torch.float32):
    """A Hebbian weight plus noise (sums are then inexact, so order matters) and random cues."""
    g = torch.Generator().manual_seed(seed)
    weight = hebbian_weight(random_patterns(3, n, seed), dtype=torch.float64)
    weight = (weight + 0.05 * torch.randn(n, n, generator=g, dtype=torch.float64)).to(dtype)
    cue = torch.rand(batch, n, generator=g) < 0.5
    return weight, cue


def assert_same_recall(out, ref):
    assert torch.equal(out.spikes, ref.spikes)
    assert torch.equal(out.membrane, ref.membrane)
    assert torch.equal(out.settled, ref.settled)
    assert torch.equal(out.settle_step, ref.settle_step)
    assert torch.equal(out.converged, ref.converged)


# --------------------------------------------------------------------------- acceptance (issue 4)


@pytest.mark.parametrize("backend", ["cpp", "auto"])
def test_acceptance_recall_from_noisy_cues(backend):
    """N = 1024, 50 random patterns (half the bits on), cues with 20% of bits flipped: at least
    95% of the recalls settle with overlap >= 0.95 (fraction of equal bits) to the stored pattern."""
    n, p, batch = 1024, 50, 100
    patterns = random_patterns(p, n, seed=4)
    net = SpikingHopfield(n, backend=backend).store(patterns)
    which = torch.randint(0, p, (batch,), generator=torch.Generator().manual_seed(5))
    target = patterns[which]
    cue = flip(target, 0.2, seed=6)
    assert abs(SpikingHopfield.overlap(cue, target).mean().item() - 0.8) < 0.01
    out = net.recall(cue, steps=20)
    overlap = SpikingHopfield.overlap(out.settled, target)
    assert (overlap >= 0.95).float().mean().item() >= 0.95
    # and the recalled state is the stored pattern itself, not merely close to it
    assert (SpikingHopfield.overlap(out.settled, target, bipolar=True) >= 0.95).float().mean().item() >= 0.95


# --------------------------------------------------------------------------- backends = reference


@given(
    n=st.integers(1, 150),
    batch=st.integers(1, 4),
    steps=st.integers(1, 6),
    reset=st.sampled_from(RESETS),
    beta=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    threshold=st.sampled_from([0.01, 0.05, 0.3]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_cpp_matches_reference(n, batch, steps, reset, beta, threshold, dtype, seed):
    weight, cue = generic_case(n, batch, seed, dtype)
    args = (weight, cue, steps, beta, threshold)
    ref = spiking_hopfield_recall(*args, reset=reset, backend="reference")
    assert_same_recall(spiking_hopfield_recall(*args, reset=reset, backend="cpp"), ref)


@pytest.mark.parametrize(
    "n, batch, steps, reset, dtype",
    [(64, 3, 5, "subtract", torch.float32), (37, 2, 4, "zero", torch.float64), (20, 2, 3, "none", torch.float32)],
)
def test_triton_matches_reference(n, batch, steps, reset, dtype):
    weight, cue = generic_case(n, batch, seed=n, dtype=dtype)
    ref = spiking_hopfield_recall(weight, cue, steps, reset=reset, backend="reference")
    assert ref.spikes.sum() > 0 and (1 - ref.spikes).sum() > 0  # something to compare
    assert_same_recall(spiking_hopfield_recall(weight, cue, steps, reset=reset, backend="triton"), ref)


@pytest.mark.parametrize("n, batch, steps", [(200, 1, 8), (130, 3, 6), (64, 10, 4)])
def test_cpp_deterministic_across_thread_counts(n, batch, steps):
    """The C++ kernel splits rows (or, with fewer rows than threads, column blocks of a row in
    lockstep); every split gives the reference's spikes and membranes."""
    from sparsespike import _C

    weight, cue = generic_case(n, batch, seed=3)
    ref_spikes, ref_v = spiking_hopfield_recall_reference(weight, cue.float(), steps, 0.9, 0.05)
    expected_events = int(cue.sum() + ref_spikes[:-1].sum())
    for threads in (1, 2, 3, 4):
        spikes, v = torch.empty(steps, batch, n), torch.empty(batch, n)
        events = _C.spiking_hopfield_recall(
            weight.numpy(), cue.float().numpy(), steps, 0.9, 0.05, 0, spikes.numpy(), v.numpy(), threads
        )
        assert torch.equal(spikes, ref_spikes) and torch.equal(v, ref_v)
        assert events == expected_events


def test_auto_falls_back_to_reference_for_other_dtypes():
    weight, cue = generic_case(24, 2, seed=1, dtype=torch.bfloat16)
    out = spiking_hopfield_recall(weight, cue, 3)
    spikes, v = spiking_hopfield_recall_reference(weight, cue.to(torch.bfloat16), 3, 0.9, 0.05)
    assert torch.equal(out.spikes, spikes) and torch.equal(out.membrane, v)
    with pytest.raises(TypeError, match="float32 and float64 weights"):
        spiking_hopfield_recall(weight, cue, 3, backend="cpp")


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_cue_dtypes_and_single_cue(backend):
    weight, cue = generic_case(40, 3, seed=2)
    expected = spiking_hopfield_recall(weight, cue, 4, backend=backend)
    for as_dtype in (torch.uint8, torch.int64, torch.float32, torch.float64):
        assert_same_recall(spiking_hopfield_recall(weight, cue.to(as_dtype), 4, backend=backend), expected)
    one = spiking_hopfield_recall(weight, cue[1], 4, backend=backend)
    assert one.spikes.shape == (4, 40) and one.settled.shape == (40,) and one.settle_step.shape == ()
    assert torch.equal(one.spikes, expected.spikes[:, 1]) and torch.equal(one.membrane, expected.membrane[1])


# --------------------------------------------------------------------------- dynamics and outputs


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_stored_pattern_is_a_fixed_point(backend):
    pattern = random_patterns(1, 96, seed=8)
    weight = hebbian_weight(pattern)
    out = spiking_hopfield_recall(weight, pattern, 6, backend=backend)
    assert torch.equal(out.spikes, pattern.float().expand(6, 1, 96))
    assert out.settle_step.tolist() == [0] and out.converged.tolist() == [True]
    single = spiking_hopfield_recall(weight, pattern, 1, backend=backend)  # one step: nothing to compare with
    assert single.settle_step.tolist() == [0] and single.converged.tolist() == [False]


def test_settle_step_and_majority_window():
    weight, cue = generic_case(50, 6, seed=11)
    out = spiking_hopfield_recall(weight, cue, 9, window=3, backend="cpp")
    for b in range(6):
        s = out.spikes[:, b]
        last_change = max([t for t in range(1, 9) if not torch.equal(s[t], s[t - 1])], default=0)
        assert out.settle_step[b].item() == last_change
        assert out.converged[b].item() == (last_change < 8)
    assert torch.equal(out.settled, (out.spikes[-3:].sum(0) >= 2).float())
    assert torch.equal(spiking_hopfield_recall(weight, cue, 9, window=1).settled, out.spikes[-1])
    assert torch.equal(spiking_hopfield_recall(weight, cue, 2, window=5).settled, (out.spikes[:2].sum(0) == 2).float())


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_synops_are_events_times_fan_out(backend):
    weight, cue = generic_case(30, 3, seed=12)
    with sparsespike.count_synops() as counter:
        out = spiking_hopfield_recall(weight, cue, 5, backend=backend)
    assert counter.by_op() == {"spiking_hopfield_recall": 30 * int(cue.sum() + out.spikes[:-1].sum())}


def test_inference_only_no_gradients():
    weight, cue = generic_case(16, 2, seed=13)
    weight.requires_grad_()
    out = spiking_hopfield_recall(weight, cue, 3, backend="cpp")
    assert not any(t.requires_grad for t in out)


def test_opcheck():
    weight, cue = generic_case(16, 2, seed=14)
    torch.library.opcheck(
        torch.ops.sparsespike.spiking_hopfield_recall,
        (weight, cue.float(), 3, 0.9, 0.05, 0, "cpp"),
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


def test_torch_compile_fullgraph():
    weight, cue = generic_case(24, 3, seed=21)
    net = SpikingHopfield(24, backend="cpp")
    net.weight.copy_(weight)
    compiled = torch.compile(net, fullgraph=True)
    assert_same_recall(compiled(cue, 4), spiking_hopfield_recall(weight, cue, 4, backend="reference"))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_triton_matches_cpu(dtype):
    """Compiled for a GPU without fused multiply-adds, the Triton kernel equals the C++ kernel
    (and so the reference) bit for bit, at the acceptance test's size."""
    n, batch = 1024, 16
    patterns = random_patterns(50, n, seed=22)
    weight = hebbian_weight(patterns, dtype=torch.float64)
    noise = torch.randn(n, n, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
    weight = (weight + 1e-3 * noise).to(dtype)
    cue = flip(patterns[:batch], 0.2, seed=24)
    expected = spiking_hopfield_recall(weight, cue, 12, backend="cpp")
    out = spiking_hopfield_recall(weight.cuda(), cue.cuda(), 12, backend="triton")
    assert_same_recall(type(out)(*(t.cpu() for t in out)), expected)


# --------------------------------------------------------------------------- Hebbian storage


def test_hebbian_rule():
    patterns = random_patterns(7, 48, seed=15)
    weight = hebbian_weight(patterns)
    xi = patterns.double() * 2 - 1
    formula = sum(torch.outer(x, x) for x in xi) / 48
    formula.fill_diagonal_(0)
    assert weight.dtype == torch.float32
    assert torch.equal(weight, weight.t()) and torch.all(weight.diagonal() == 0)
    torch.testing.assert_close(weight, formula.float(), rtol=0, atol=1e-7)
    assert torch.equal(hebbian_weight(patterns.float()), weight)
    assert torch.equal(hebbian_weight(patterns.to(torch.uint8)), weight)
    assert torch.equal(hebbian_weight(patterns[0]), hebbian_weight(patterns[:1]))


def test_store_accumulates_clear_resets_and_state_dict():
    patterns = random_patterns(10, 64, seed=16)  # N a power of two: the sums are exact
    net = SpikingHopfield(64)
    net.store(patterns[:4]).store(patterns[4])
    net.store(patterns[5:])
    assert torch.equal(net.weight, hebbian_weight(patterns)) and net.n_patterns.item() == 10
    odd = SpikingHopfield(50).store(patterns[:4, :50]).store(patterns[4:, :50])  # one rounding each
    torch.testing.assert_close(odd.weight, hebbian_weight(patterns[:, :50]), rtol=0, atol=1e-6)
    state = net.state_dict()
    assert set(state) == {"weight", "n_patterns"}
    copy = SpikingHopfield(64)
    copy.load_state_dict(state)
    cue = flip(patterns[:3], 0.1, seed=17)
    assert torch.equal(copy.recall(cue, 5).spikes, net.recall(cue, 5).spikes)
    net.clear()
    assert torch.all(net.weight == 0) and net.n_patterns.item() == 0


def test_module_repr_and_forward():
    net = SpikingHopfield(8, beta=0.8, threshold=0.1, reset="zero", backend="reference")
    assert "n_neurons=8" in repr(net) and "reset='zero'" in repr(net)
    cue = torch.ones(8, dtype=torch.bool)
    assert torch.equal(net(cue, 3).spikes, net.recall(cue, 3).spikes)


def test_pattern_overlap():
    a = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    b = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert pattern_overlap(a, b).tolist() == [0.75, 0.0]
    assert pattern_overlap(a, b, bipolar=True).tolist() == [0.5, -1.0]
    with pytest.raises(ValueError, match="same last dimension"):
        pattern_overlap(a, torch.ones(5))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton"])
def test_non_finite_weight(backend):
    weight, cue = generic_case(8, 2, seed=18)
    weight[3, 5] = math.nan
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        spiking_hopfield_recall(weight, cue, 2, backend=backend)


def test_bad_arguments_name_the_argument():
    weight, cue = generic_case(8, 2, seed=19)
    cases = [
        (dict(cue=torch.zeros(2, 9)), ValueError, "cue must be"),
        (dict(cue=torch.zeros(2, 3, 8)), ValueError, "cue must be"),
        (dict(cue=torch.full((2, 8), 0.5)), ValueError, "cue must be binary"),
        (dict(cue=torch.full((2, 8), 2)), ValueError, "cue must be binary"),
        (dict(cue=[0, 1]), TypeError, "cue must be a torch.Tensor"),
        (dict(cue=torch.zeros(0, 8)), ValueError, "cue has zero elements"),
        (dict(weight=torch.zeros(8, 7)), ValueError, "weight must be a square"),
        (dict(weight=torch.zeros(8, 8, dtype=torch.int32)), TypeError, "weight must be a floating-point"),
        (dict(steps=0), ValueError, "steps must be >= 1"),
        (dict(steps=2.0), TypeError, "steps must be an int"),
        (dict(steps=True), TypeError, "steps must be an int"),
        (dict(beta=1.5), ValueError, "beta must be in"),
        (dict(threshold=0.0), ValueError, "threshold must be finite and > 0"),
        (dict(threshold=torch.tensor(0.1)), TypeError, "threshold must be a Python float"),
        (dict(reset="soft"), ValueError, "reset must be one of"),
        (dict(window=0), ValueError, "window must be"),
        (dict(backend="cuda"), ValueError, "backend must be one of"),
    ]
    base = dict(weight=weight, cue=cue, steps=3)
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            spiking_hopfield_recall(**{**base, **change})
    with pytest.raises(ValueError, match="cue is a meta tensor"):
        spiking_hopfield_recall(weight, cue.to("meta"), 3)


def test_bad_patterns_and_module_arguments():
    net = SpikingHopfield(8)
    with pytest.raises(ValueError, match=r"patterns must be \[P, 8\]"):
        net.store(torch.zeros(2, 9))
    with pytest.raises(ValueError, match=r"patterns must be \[P, 8\]"):
        net.store(torch.zeros(2, 2, 8))
    with pytest.raises(ValueError, match="patterns must be binary"):
        net.store(torch.full((2, 8), 3.0))
    with pytest.raises(TypeError, match="patterns must be bool, an integer or a floating-point"):
        net.store(torch.zeros(2, 8, dtype=torch.complex64))
    with pytest.raises(TypeError, match="patterns must be a torch.Tensor"):
        net.store([[0] * 8])
    with pytest.raises(ValueError, match="patterns has zero elements"):
        hebbian_weight(torch.zeros(0, 8))
    with pytest.raises(ValueError, match="n_neurons must be >= 1"):
        SpikingHopfield(0)
    with pytest.raises(ValueError, match="beta must be in"):
        SpikingHopfield(8, beta=-0.1)
    with pytest.raises(ValueError, match="backend must be one of"):
        SpikingHopfield(8, backend="gpu")
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        SpikingHopfield(8, dtype=torch.int64)


class TestExtensionBoundary:
    """sparsespike._C.spiking_hopfield_recall validates on its own, before touching memory."""

    def arrays(self, n=6, batch=2, steps=3, dtype=torch.float32):
        weight = hebbian_weight(random_patterns(2, n, seed=20), dtype=dtype)
        zeros = lambda *shape: torch.zeros(*shape, dtype=dtype).numpy()  # noqa: E731
        return weight.numpy(), zeros(batch, n), zeros(steps, batch, n), zeros(batch, n)

    def test_arguments(self):
        from sparsespike import _C

        w, cue, spikes, v = self.arrays()
        ok = dict(weight=w, cue=cue, steps=3, beta=0.9, threshold=0.05, reset=0, spikes=spikes, v_final=v, threads=1)
        cases = [
            (dict(weight=w[:, :5].copy()), ValueError, "weight must be a square"),
            (dict(weight=w.astype("int32")), TypeError, "weight must be float32 or float64"),
            (dict(weight=torch.zeros(0, 0).numpy()), ValueError, "at least one neuron"),
            (dict(weight=w.T), ValueError, "weight must be C-contiguous"),
            (dict(cue=cue.astype("float64")), TypeError, "cue must have dtype float32"),
            (dict(cue=torch.zeros(2, 7).numpy()), ValueError, r"cue must have shape \[2, 6\]"),
            (dict(cue=torch.zeros(6).numpy()), ValueError, "cue must be 2-D"),
            (dict(cue=torch.zeros(6, 2).numpy().T), ValueError, "cue must be C-contiguous"),
            (dict(spikes=torch.zeros(2, 2, 6).numpy()), ValueError, r"spikes must have shape \[3, 2, 6\]"),
            (dict(spikes=spikes.astype("float64")), TypeError, "spikes must have dtype float32"),
            (dict(v_final=torch.zeros(2, 5).numpy()), ValueError, r"v_final must have shape \[2, 6\]"),
            (dict(steps=0), ValueError, "steps must be >= 1"),
            (dict(beta=1.5), ValueError, "beta must be in"),
            (dict(beta=math.nan), ValueError, "beta must be in"),
            (dict(threshold=0.0), ValueError, "threshold must be finite and > 0"),
            (dict(threshold=math.inf), ValueError, "threshold must be finite and > 0"),
            (dict(reset=3), ValueError, "reset must be 0, 1 or 2"),
        ]
        for change, error, message in cases:
            with pytest.raises(error, match=message):
                _C.spiking_hopfield_recall(**{**ok, **change})
        readonly = torch.zeros(3, 2, 6).numpy()
        readonly.setflags(write=False)
        with pytest.raises(ValueError, match="spikes must be writable"):
            _C.spiking_hopfield_recall(**{**ok, "spikes": readonly})
        events = _C.spiking_hopfield_recall(**ok)  # a silent cue: the events are the network's own spikes
        assert events == int(cue.sum() + spikes[:-1].sum())

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_data_checked_before_anything_is_written(self, dtype):
        from sparsespike import _C

        w, cue, spikes, v = self.arrays(dtype=dtype)
        spikes[...] = 7.0
        w[2, 4] = math.inf
        with pytest.raises(ValueError, match="weight contains NaN or Inf"):
            _C.spiking_hopfield_recall(w, cue, 3, 0.9, 0.05, 0, spikes, v, 2)
        w[2, 4] = 0.0
        cue[1, 3] = 0.5
        with pytest.raises(ValueError, match="cue must hold only 0 and 1"):
            _C.spiking_hopfield_recall(w, cue, 3, 0.9, 0.05, 0, spikes, v, 2)
        assert (spikes == 7.0).all()
