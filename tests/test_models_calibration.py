"""Firing calibration: every spiking layer ends near its target rate, by scaling its weights only."""

import pytest
import torch

from sparsespike.models import build_model
from sparsespike.models.calibration import calibrate_firing, spiking_layers
from sparsespike.nn import LIF


def _rates(model, forward):
    """{LIF name: firing rate} of the layers that forward() runs."""
    rates = {}
    handles = [
        lif.register_forward_hook(lambda m, i, o, n=name: rates.__setitem__(n, float(o.float().mean())))
        for name, _, lif in spiking_layers(model)
    ]
    with torch.no_grad():
        forward()
    for h in handles:
        h.remove()
    return rates


@pytest.mark.parametrize("name", ["m1", "m4"])
def test_silent_network_reaches_target_rates(name):
    torch.manual_seed(0)
    model = build_model(name, "audio", hidden_sizes=(256, 256), feature_size=64)
    x = (torch.rand(8, 40, 700) < 0.02).float()
    before = _rates(model, lambda: model(x))
    assert before["encoder.lif_hidden"] == 0.0  # PyTorch's init: the deeper layers stay silent
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = calibrate_firing(model, lambda: model(x), hidden_rate=0.03, output_rate=0.05, tolerance=1.5)
    after = _rates(model, lambda: model(x))
    assert list(result) == [n for n, _, _ in spiking_layers(model)]
    for layer, info in result.items():
        target = 0.05 if layer == "head.lif_out" else 0.03
        assert target / 1.5 <= after[layer] <= target * 1.5, (layer, after[layer])
        assert info["rate"] == pytest.approx(after[layer])
    # only the synaptic layers feeding LIFs changed, each by one positive factor
    module_names = {id(m): n for n, m in model.named_modules()}
    scaled = {f"{module_names[id(layer)]}.{p}" for _, layer, _ in spiking_layers(model) for p in ("weight", "bias")}
    for n, p in model.named_parameters():
        if n in scaled:
            ratio = p.detach() / weights[n]
            finite = ratio[torch.isfinite(ratio)]
            assert torch.allclose(finite, finite[0].expand_as(finite), rtol=1e-5) and finite[0] > 0
        else:
            assert torch.equal(p.detach(), weights[n]), n


def test_skip_and_bad_rates():
    torch.manual_seed(0)
    model = build_model("m1", "audio", hidden_sizes=(64, 64), feature_size=32)
    x = (torch.rand(4, 20, 700) < 0.05).float()
    first = model.encoder.fc_input.weight.detach().clone()
    result = calibrate_firing(model, lambda: model(x), skip={"encoder.lif_input"})
    assert "encoder.lif_input" not in result and torch.equal(model.encoder.fc_input.weight, first)
    with pytest.raises(ValueError, match="rates"):
        calibrate_firing(model, lambda: model(x), hidden_rate=0.0)
    assert all(isinstance(lif, LIF) for _, _, lif in spiking_layers(model))


def test_joint_model_second_modality_keeps_the_shared_head():
    # the head is calibrated on the first modality; on the second only the other encoder changes,
    # and its last layer gets the hidden rate, not the output rate
    torch.manual_seed(0)
    model = build_model("joint", "both", visual_hidden_sizes=(4, 8), audio_hidden_sizes=(48, 48), feature_size=32)
    visual = (torch.rand(4, 6, 2, 34, 34) < 0.02).float()
    audio = (torch.rand(4, 20, 700) < 0.05).float()
    first = calibrate_firing(model, lambda: model(visual, "visual"), hidden_rate=0.03, output_rate=0.05)
    head = model.head.fc_out.weight.detach().clone()
    second = calibrate_firing(model, lambda: model(audio, "audio"), hidden_rate=0.03, output_rate=0.05, skip=first)
    assert "head.lif_out" in first and not set(first) & set(second)
    assert set(second) == {n for n in second if n.startswith("encoders.audio")} and second
    assert torch.equal(model.head.fc_out.weight, head)
    rates = _rates(model, lambda: model(audio, "audio"))
    for name in second:
        assert 0.02 <= rates[name] <= 0.045, (name, rates[name])
