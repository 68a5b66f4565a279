"""SpikeLinear: a drop-in nn.Linear for spike inputs."""

import pytest
import torch
from torch import nn

from sparsespike import spike_linear_reference
from sparsespike.nn import SpikeLinear


def test_same_init_and_state_dict_as_linear():
    torch.manual_seed(0)
    ref = nn.Linear(30, 12)
    torch.manual_seed(0)
    layer = SpikeLinear(30, 12)
    assert layer.state_dict().keys() == ref.state_dict().keys()
    for key, value in ref.state_dict().items():
        assert torch.equal(layer.state_dict()[key], value)
    layer.load_state_dict(ref.state_dict())
    nobias = SpikeLinear(30, 12, bias=False)
    assert list(nobias.state_dict()) == ["weight"]
    assert isinstance(layer, nn.Linear)


@pytest.mark.parametrize("backend", [None, "cpp", "triton", "reference"])
def test_forward_backward_equals_linear(backend):
    torch.manual_seed(1)
    ref = nn.Linear(40, 10)
    layer = SpikeLinear.from_linear(ref, backend=backend)
    assert layer.weight is ref.weight and layer.bias is ref.bias
    spikes = (torch.rand(4, 6, 40) < 0.15).float()
    out = layer(spikes)
    expected = spike_linear_reference(spikes, ref.weight, ref.bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.square().sum().backward()
    grad_w = ref.weight.grad.clone()
    ref.weight.grad = None
    expected.detach().requires_grad_()
    nn.functional.linear(spikes, ref.weight, ref.bias).square().sum().backward()
    torch.testing.assert_close(grad_w, ref.weight.grad, rtol=1e-5, atol=1e-5)


def test_trains_with_an_optimizer():
    torch.manual_seed(2)
    layer = SpikeLinear(50, 3, backend="cpp")
    spikes = (torch.rand(64, 50) < 0.1).float()
    target = spikes @ torch.randn(50, 3)  # realisable by the layer
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (layer(spikes) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        # the cached packed weight must follow every optimizer step
        torch.testing.assert_close(
            layer(spikes), spike_linear_reference(spikes, layer.weight, layer.bias), rtol=1e-5, atol=1e-5
        )
    assert losses[-1] < 0.2 * losses[0]


def test_repr_and_errors():
    layer = SpikeLinear(3, 2, backend="cpp")
    assert "backend='cpp'" in repr(layer)
    with pytest.raises(ValueError, match="backend must be one of"):
        SpikeLinear(3, 2, backend="gpu")
    with pytest.raises(TypeError, match="linear must be an nn.Linear"):
        SpikeLinear.from_linear(nn.Conv1d(1, 1, 1))


def test_dtype_and_device_args():
    layer = SpikeLinear(8, 4, dtype=torch.float64)
    out = layer(torch.ones(2, 8, dtype=torch.bool))
    assert out.dtype == torch.float64
