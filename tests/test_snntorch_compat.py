"""Leaky equals snnTorch's Leaky: spikes, membranes and gradients (snntorch is a test extra)."""

import pytest
import torch

from sparsespike.nn import Leaky

snntorch = pytest.importorskip("snntorch")


def snntorch_loop(neuron, x):
    mem = torch.zeros_like(x[0])
    spikes, mems = [], []
    for t in range(x.shape[0]):
        spk, mem = neuron(x[t], mem)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems), mem


SETTINGS = {
    "study": dict(beta=0.9, threshold=1.0, spike_grad=lambda: snntorch.surrogate.fast_sigmoid(slope=25)),
    "defaults": dict(beta=0.5, threshold=1.0, spike_grad=lambda: None),
}


@pytest.mark.parametrize("steps", [1, 7, 200])
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_leaky_equals_snntorch(steps, setting, reset):
    cfg = SETTINGS[setting]
    g = torch.Generator().manual_seed(steps)
    x = torch.randn(steps, 4, 9, generator=g) * 0.8 + 0.3
    theirs = snntorch.Leaky(
        beta=cfg["beta"], threshold=cfg["threshold"], spike_grad=cfg["spike_grad"](), reset_mechanism=reset
    )
    ours = Leaky(beta=cfg["beta"], threshold=cfg["threshold"], spike_grad=cfg["spike_grad"](), reset_mechanism=reset)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, m1, last1 = snntorch_loop(theirs, x1)
    s2, m2, last2 = snntorch_loop(ours, x2)  # single-step calls
    s3, last3 = ours.multi_step(x)  # one fused call
    assert torch.equal(s1, s2) and torch.equal(s1, s3)
    torch.testing.assert_close(m1, m2)
    torch.testing.assert_close(last1, last3)
    weights = torch.linspace(-1, 1, steps).view(steps, 1, 1)
    g1 = torch.autograd.grad((s1 * weights).sum() + last1.sum(), x1)[0]
    g2 = torch.autograd.grad((s2 * weights).sum() + last2.sum(), x2)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)


def test_leaky_multi_step_gradients_equal_snntorch():
    x = torch.randn(50, 3, 8) * 0.8 + 0.3
    theirs = snntorch.Leaky(beta=0.9, spike_grad=snntorch.surrogate.fast_sigmoid(slope=25), learn_beta=True)
    ours = Leaky(beta=0.9, spike_grad=snntorch.surrogate.fast_sigmoid(slope=25), learn_beta=True)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, _, last1 = snntorch_loop(theirs, x1)
    s2, last2 = ours.multi_step(x2)
    (s1.sum() + last1.square().sum()).backward()
    (s2.sum() + last2.square().sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(theirs.beta.grad, ours.beta.grad, rtol=1e-4, atol=1e-4)


def test_leaky_init_hidden_and_output():
    x = torch.randn(6, 2, 5)
    ours = Leaky(beta=0.9, init_hidden=True, output=True)
    theirs = snntorch.Leaky(beta=0.9, init_hidden=True, output=True)
    for t in range(6):
        spk1, mem1 = theirs(x[t])
        spk2, mem2 = ours(x[t])
        assert torch.equal(spk1, spk2)
        torch.testing.assert_close(mem1, mem2)
    with pytest.raises(TypeError, match="should not be passed"):
        ours(x[0], mem2)
    ours.init_leaky()
    assert ours.mem is None


def test_leaky_unsupported_surrogate_falls_back_with_a_warning():
    fn = snntorch.surrogate.triangular()
    with pytest.warns(RuntimeWarning, match="no fused equivalent"):
        ours = Leaky(beta=0.9, spike_grad=fn)
    theirs = snntorch.Leaky(beta=0.9, spike_grad=fn)
    x = torch.randn(9, 2, 4) + 0.5
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, _, _ = snntorch_loop(theirs, x1)
    s2, _ = ours.multi_step(x2)
    assert torch.equal(s1, s2)
    g1 = torch.autograd.grad(s1.sum(), x1)[0]
    g2 = torch.autograd.grad(s2.sum(), x2)[0]
    torch.testing.assert_close(g1, g2)


def test_leaky_loads_snntorch_state_dicts():
    theirs = snntorch.Leaky(beta=0.7, threshold=1.3, learn_beta=True, reset_mechanism="zero")
    ours = Leaky(beta=0.1, threshold=1.0, learn_beta=True, reset_mechanism="zero")
    ours.load_state_dict(theirs.state_dict())  # strict: the same keys
    assert float(ours.beta.detach()) == pytest.approx(0.7) and float(ours.threshold) == pytest.approx(1.3)
    x = torch.randn(20, 2, 3) + 0.5
    s1, _, _ = snntorch_loop(theirs, x)
    s2, _ = ours.multi_step(x)
    assert torch.equal(s1, s2)
