"""SynOp counting: nnz(input) x out_features per call, equal to a brute-force count."""

import pytest
import torch

import sparsespike
from sparsespike import count_synops, spike_linear, synop_scope


def brute_force_synops(spikes, out_features):
    count = 0
    for value in spikes.reshape(-1).tolist():
        if value != 0:
            count += out_features  # one delivery per target synapse
    return count


@pytest.mark.parametrize("backend", ["reference", "cpp", "triton", "auto"])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5, 1.0])
def test_counts_equal_brute_force(backend, density):
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(3, 7, 45, generator=g) < density).float()
    spikes[0, 0, :3] = torch.tensor([-0.0, 2.5, -1.0])  # -0.0 is silent, graded values count
    w = torch.randn(13, 45)
    with count_synops() as counter:
        spike_linear(spikes, w, backend=backend)
        spike_linear(spikes.bool(), w, backend=backend)
    expected = brute_force_synops(spikes, 13) + brute_force_synops(spikes.bool(), 13)
    assert counter.total() == expected
    assert counter.by_op() == {"spike_linear": expected}


def test_dense_path_counts_the_same():
    spikes = (torch.rand(50, 30) < 0.4).float()
    w = torch.randn(9, 30)
    totals = []
    for density in (0.0, 1.0):  # force dense, then event-driven
        sparsespike.set_crossover("cpu", forward_density=density)
        with count_synops() as counter:
            spike_linear(spikes, w, backend="auto")
        totals.append(counter.total())
    assert totals[0] == totals[1] == brute_force_synops(spikes, 9)


def test_scopes_nesting_and_reset():
    spikes = torch.ones(2, 4)
    w = torch.randn(3, 4)
    with count_synops() as outer:
        with synop_scope("encoder"):
            spike_linear(spikes, w)
            with synop_scope("fc2"):
                spike_linear(spikes, w)
        with count_synops() as inner:
            spike_linear(spikes[:1], w)
    assert outer.by_scope() == {"encoder": 24, "encoder.fc2": 24, "": 12}
    assert inner.total() == 12
    assert outer.calls()[("encoder", "spike_linear")] == 1
    outer.reset()
    assert outer.total() == 0


def test_no_counting_outside_a_counter():
    spikes = torch.ones(2, 4)
    w = torch.randn(3, 4)
    spike_linear(spikes, w)
    with count_synops() as counter:
        pass
    assert counter.total() == 0
    assert not sparsespike.synops.counting()


def test_backward_is_not_counted():
    spikes = torch.ones(2, 4)
    w = torch.randn(3, 4, requires_grad=True)
    out = spike_linear(spikes, w, backend="cpp")
    with count_synops() as counter:
        out.sum().backward()
    assert counter.total() == 0


def test_scope_name_checked():
    with pytest.raises(ValueError, match="scope name"):
        with synop_scope(""):
            pass


def test_module_counts():
    layer = sparsespike.nn.SpikeLinear(20, 7)
    spikes = (torch.rand(5, 20) < 0.2).float()
    with count_synops() as counter:
        layer(spikes)
    assert counter.total() == brute_force_synops(spikes, 7)
