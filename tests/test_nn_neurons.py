"""Neuron modules: LIF (multi-step), Leaky (snnTorch drop-in), LIFNode (SpikingJelly drop-in)."""

import pytest
import torch

from sparsespike import lif
from sparsespike.nn import LIF, LIFNode


def test_lif_module_equals_the_op_and_batch_first():
    x = torch.randn(12, 3, 7)
    layer = LIF(beta=0.8, threshold=0.9, surrogate="atan")
    spikes, membrane = layer(x, return_membrane=True)
    ref = lif(x, 0.8, 0.9, surrogate="atan")
    assert torch.equal(spikes, ref.spikes) and torch.equal(membrane, ref.membrane)
    bf = LIF(beta=0.8, threshold=0.9, surrogate="atan", batch_first=True)
    assert torch.equal(bf(x.transpose(0, 1)), spikes.transpose(0, 1))


def test_lif_module_learnable_parameters():
    layer = LIF(beta=torch.full((7,), 0.7), threshold=1.0, learn_beta=True, learn_threshold=True)
    assert {n for n, _ in layer.named_parameters()} == {"beta", "threshold"}
    x = torch.randn(10, 4, 7) + 0.5
    layer(x).sum().backward()
    assert layer.beta.grad.shape == (7,) and layer.threshold.grad.shape == ()
    assert layer.beta.grad.abs().sum() > 0 and layer.threshold.grad != 0
    frozen = LIF()
    assert list(frozen.named_parameters()) == [] and set(frozen.state_dict()) == {"beta", "threshold"}


def test_lif_module_errors():
    with pytest.raises(ValueError, match="reset must be one of"):
        LIF(reset="hard")
    with pytest.raises(ValueError, match="surrogate must be one of"):
        LIF(surrogate="erf")


# ----------------------------------------------------------------------------- SpikingJelly LIFNode


def test_lifnode_hand_computed():
    node = LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0)  # h = v + (x - v) / 2, fire on h >= 1
    outs = [node(torch.tensor([x])).item() for x in (1.5, 1.5, 1.0, 3.0)]
    # h: 0.75 -> 1.125 (spike, v = 0) -> 0.5 -> 1.75 (spike)
    assert outs == [0.0, 1.0, 0.0, 1.0]
    assert node.v.item() == 0.0
    soft = LIFNode(tau=2.0, v_reset=None)
    soft(torch.tensor([3.0]))  # h = 1.5, spike, v = 0.5
    assert soft.v.item() == 0.5
    node.reset()
    assert node.v == 0.0


@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("decay_input", [True, False])
def test_lifnode_single_and_multi_step_agree(v_reset, decay_input):
    x = torch.randn(15, 3, 6) + 0.4
    single = LIFNode(tau=3.0, v_reset=v_reset, decay_input=decay_input, step_mode="s")
    multi = LIFNode(tau=3.0, v_reset=v_reset, decay_input=decay_input, step_mode="m")
    stepped = torch.stack([single(x[t]) for t in range(15)])
    assert torch.equal(stepped, multi(x))
    torch.testing.assert_close(single.v, multi.v)


def test_lifnode_state_dict_is_empty_like_spikingjelly():
    assert LIFNode().state_dict() == {}


def test_lifnode_errors():
    with pytest.raises(ValueError, match="v_reset must be 0.0"):
        LIFNode(v_reset=-0.5)
    with pytest.raises(ValueError, match="tau must be a number > 1"):
        LIFNode(tau=0.5)
    with pytest.raises(ValueError, match="step_mode"):
        LIFNode(step_mode="x")


def test_fire_gives_the_band_when_the_surrogate_has_compact_support():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 10, requires_grad=True)
    layer = LIF(beta=0.8, grad_band=0.3)
    calls = []
    layer.register_forward_hook(lambda m, i, o: calls.append(o))  # fire() runs the module's hooks
    spikes, band = layer.fire(x)
    want = lif(x, 0.8, 1.0, grad_band=0.3, return_band=True)
    assert torch.equal(spikes, want.spikes) and torch.equal(band, want.band) and len(calls) == 1
    assert float(layer.band_fraction) == pytest.approx(want.band.float().mean().item())
    # batch_first: the band comes back in the input's layout
    first = LIF(beta=0.8, grad_band=0.3, batch_first=True)
    spikes_bf, band_bf = first.fire(x.transpose(0, 1))
    assert torch.equal(band_bf, band.transpose(0, 1)) and torch.equal(spikes_bf, spikes.transpose(0, 1))
    # no band: an exact surrogate, no graph to record, or a plain call
    assert LIF().fire(x)[1] is None
    with torch.no_grad():
        assert layer.fire(x)[1] is None
    assert layer.fire(x.detach())[1] is None
    assert isinstance(layer(x), torch.Tensor) and layer._band is None
    assert LIF(surrogate="triangle").fire(x)[1] is not None


def test_fire_is_lifs_own_call():
    from sparsespike.nn import Leaky

    with pytest.raises(TypeError, match="Leaky has a forward of its own"):
        Leaky(beta=0.9, grad_band=0.2).fire(torch.randn(3, 4))
