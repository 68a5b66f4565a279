"""LIFNode equals SpikingJelly's LIFNode: spikes, membranes and input gradients.

SpikingJelly is a test extra installed without its dependencies (``make test`` does it; its
torchvision/torchaudio pins would replace the CPU torch); its neuron modules need only torch and
loguru. SpikingJelly charges as v + (x - v) / tau and we as beta v + (1 - beta) x with beta =
1 - 1/tau: equal up to rounding, so membranes and gradients are compared at fp32 tolerances and
spikes exactly (a one-ulp difference could flip a spike only at h == threshold, which these
seeded inputs do not hit).
"""

import itertools

import pytest
import torch

from sparsespike.nn import LIFNode

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")

OPTIONS = list(itertools.product([2.0, 1.25], [True, False], [0.0, None], [True, False]))


def run(node, x, step_mode):
    if step_mode == "m":
        spikes = node(x)
    else:
        spikes = torch.stack([node(x[t]) for t in range(x.shape[0])])
    return spikes, node.v


@pytest.mark.parametrize("step_mode", ["m", "s"])
@pytest.mark.parametrize("steps", [1, 7, 60])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "tau{}-decay{}-reset{}-detach{}".format(*o))
def test_lifnode_equals_spikingjelly(options, steps, step_mode):
    tau, decay_input, v_reset, detach_reset = options
    g = torch.Generator().manual_seed(steps)
    x = torch.randn(steps, 3, 11, generator=g) * 1.5 + 0.6
    kwargs = dict(tau=tau, decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset, step_mode=step_mode)
    theirs, ours = sj_neuron.LIFNode(**kwargs), LIFNode(**kwargs)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, v1 = run(theirs, x1, step_mode)
    s2, v2 = run(ours, x2, step_mode)
    assert s2.mean() > 0.05  # the comparison covers firing neurons
    assert torch.equal(s1, s2)
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-5)
    weights = torch.linspace(-1, 1, steps).view(steps, 1, 1)
    g1 = torch.autograd.grad((s1 * weights).sum() + v1.square().sum(), x1)[0]
    g2 = torch.autograd.grad((s2 * weights).sum() + v2.square().sum(), x2)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


def test_lifnode_state_is_carried_and_reset_like_spikingjelly():
    x = torch.randn(2, 5, 4, 6) * 1.5 + 0.6
    theirs, ours = sj_neuron.LIFNode(step_mode="m"), LIFNode(step_mode="m")
    for chunk in x:  # two calls: the membrane carries over
        assert torch.equal(theirs(chunk), ours(chunk))
    torch.testing.assert_close(theirs.v, ours.v)
    theirs.reset()
    ours.reset()
    assert torch.equal(theirs(x[0]), ours(x[0]))


@pytest.mark.parametrize("kind, alpha", [("Sigmoid", 4.0), ("Sigmoid", 2.5), ("ATan", 2.0), ("ATan", 3.0)])
def test_lifnode_takes_spikingjelly_surrogate_objects(kind, alpha):
    # ported code passes surrogate_function=surrogate.ATan(...): the same gradients as SpikingJelly
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    x = torch.randn(9, 3, 11, generator=torch.Generator().manual_seed(3)) * 1.5 + 0.6
    theirs = sj_neuron.LIFNode(step_mode="m", surrogate_function=getattr(sj_surrogate, kind)(alpha=alpha))
    ours = LIFNode(step_mode="m", surrogate_function=getattr(sj_surrogate, kind)(alpha=alpha))
    positional = LIFNode(2.0, True, 1.0, 0.0, getattr(sj_surrogate, kind)(alpha=alpha), step_mode="m")
    grads = []
    for node in (theirs, ours, positional):
        xi = x.clone().requires_grad_()
        spikes = node(xi)
        grads.append(torch.autograd.grad((spikes * torch.linspace(-1, 1, 9).view(9, 1, 1)).sum(), xi)[0])
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[2], grads[0], rtol=1e-4, atol=1e-5)


def test_lifnode_refuses_surrogates_without_a_fused_equivalent():
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    with pytest.raises(ValueError, match="surrogate_function PiecewiseQuadratic has no fused equivalent"):
        LIFNode(surrogate_function=sj_surrogate.PiecewiseQuadratic())
    with pytest.raises(ValueError, match="spiking=False"):
        LIFNode(surrogate_function=sj_surrogate.ATan(spiking=False))
