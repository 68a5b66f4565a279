"""SpikeConv2d: a drop-in nn.Conv2d for spike inputs."""

import pytest
import torch
from torch import nn

from sparsespike.nn import SpikeConv2d


def test_same_init_and_state_dict_as_conv2d():
    for kwargs in ({}, {"bias": False}, {"stride": 2, "padding": 1, "dilation": 2}, {"padding": "same"}):
        torch.manual_seed(0)
        ref = nn.Conv2d(3, 8, 3, **kwargs)
        torch.manual_seed(0)
        layer = SpikeConv2d(3, 8, 3, **kwargs)
        assert isinstance(layer, nn.Conv2d)
        assert layer.state_dict().keys() == ref.state_dict().keys()
        for key, value in ref.state_dict().items():
            assert torch.equal(layer.state_dict()[key], value)
        layer.load_state_dict(ref.state_dict())
        assert repr(layer) == repr(ref).replace("Conv2d", "SpikeConv2d")


@pytest.mark.parametrize("backend", [None, "cpp", "triton", "reference"])
@pytest.mark.parametrize(
    "config",
    [
        {"kernel_size": 3, "padding": 1},
        {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "bias": False},
        {"kernel_size": 2, "padding": "same", "padding_mode": "reflect"},
    ],
)
def test_forward_backward_equal_conv2d(backend, config):
    torch.manual_seed(1)
    ref = nn.Conv2d(3, 5, **config)
    layer = SpikeConv2d.from_conv(ref, backend=backend)
    assert layer.weight is ref.weight and layer.bias is ref.bias
    spikes = (torch.rand(2, 3, 6, 5) < 0.3).float().requires_grad_()
    out = layer(spikes)
    expected = ref(spikes)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (spikes, *ref.parameters()))
    ref_grads = torch.autograd.grad(expected.square().sum(), (spikes, *ref.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_unbatched_bool_and_time_batch_inputs():
    torch.manual_seed(2)
    layer = SpikeConv2d(2, 4, 3, padding=1, backend="cpp")
    spikes = torch.rand(3, 2, 2, 5, 5) < 0.2  # [T, B, C, H, W]
    out = layer(spikes)
    assert out.shape == (3, 2, 4, 5, 5)
    expected = nn.functional.conv2d(spikes.reshape(6, 2, 5, 5).float(), layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(out.reshape(6, 4, 5, 5), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(spikes[0, 0]), expected[0], rtol=1e-5, atol=1e-5)  # [C, H, W]


def test_trains_with_an_optimizer():
    torch.manual_seed(3)
    layer = SpikeConv2d(4, 3, 3, padding=1, backend="cpp")
    spikes = (torch.rand(16, 4, 6, 6) < 0.3).float()
    target = nn.functional.conv2d(spikes, torch.randn(3, 4, 3, 3), padding=1)  # realisable by the layer
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (layer(spikes) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        # the cached packed weight must follow every optimizer step
        expected = nn.functional.conv2d(spikes, layer.weight, layer.bias, padding=1)
        torch.testing.assert_close(layer(spikes), expected, rtol=1e-5, atol=1e-5)
    assert losses[-1] < 0.2 * losses[0]


def test_repr_and_errors():
    layer = SpikeConv2d(3, 2, 3, backend="cpp")
    assert "backend='cpp'" in repr(layer)
    with pytest.raises(ValueError, match="backend must be one of"):
        SpikeConv2d(3, 2, 3, backend="gpu")
    with pytest.raises(TypeError, match="conv must be an nn.Conv2d"):
        SpikeConv2d.from_conv(nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="padding .* is larger than allowed"):
        SpikeConv2d(3, 2, 1, padding=1)(torch.zeros(1, 3, 4, 4))


def test_dtype_arg():
    layer = SpikeConv2d(2, 4, 3, dtype=torch.float64)
    out = layer(torch.ones(1, 2, 5, 5, dtype=torch.bool))
    assert out.dtype == torch.float64
