"""M1 (visual and audio) equals a step-by-step snnTorch implementation of the study's backbones
(a Python loop over time, snn.Leaky with init_hidden, like the reference's Models/backbones.py),
with the weights copied: spike counts, features and parameter gradients (snntorch is a test extra).
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsespike.models import build_model

snn = pytest.importorskip("snntorch")
surrogate = pytest.importorskip("snntorch.surrogate")


def study_leaky(output: bool = False):
    return snn.Leaky(beta=0.9, spike_grad=surrogate.fast_sigmoid(slope=25), init_hidden=True, output=output)


def f64(spikes):
    """snnTorch's fast_sigmoid returns float32 spikes whatever the membrane's dtype; 0/1 casts
    exactly, so the float64 forward stays exact (its backward passes float32 gradients)."""
    return spikes.double()


class SnnTorchVisual(nn.Module):
    """The study's visual backbone in snnTorch, one time step at a time."""

    def __init__(self, input_shape, channels, feature_size, num_classes):
        super().__init__()
        c, h, w = input_shape
        self.conv1, self.lif1 = nn.Conv2d(c, channels[0], 3, padding=1), study_leaky()
        self.conv2, self.lif2 = nn.Conv2d(channels[0], channels[1], 3, padding=1), study_leaky()
        self.fc1, self.lif3 = nn.Linear(channels[1] * h * w, feature_size), study_leaky()
        self.fc_out, self.lif_out = nn.Linear(feature_size, num_classes), study_leaky(output=True)

    def forward(self, x):
        for lif in (self.lif1, self.lif2, self.lif3, self.lif_out):
            lif.reset_mem()
        counts, features = 0, []
        for t in range(x.shape[1]):
            spk1 = f64(self.lif1(self.conv1(x[:, t])))
            spk2 = f64(self.lif2(self.conv2(spk1)))
            spk3 = f64(self.lif3(self.fc1(spk2.flatten(1))))
            spk_out, _ = self.lif_out(self.fc_out(spk3))
            counts = counts + f64(spk_out)
            features.append(spk3)
        return counts, torch.stack(features).mean(0)


class SnnTorchAudio(nn.Module):
    """The study's audio backbone in snnTorch, one time step at a time."""

    def __init__(self, input_size, hidden_sizes, feature_size, num_classes):
        super().__init__()
        self.fc_input, self.lif_input = nn.Linear(input_size, hidden_sizes[0]), study_leaky()
        self.fc1, self.lif1 = nn.Linear(hidden_sizes[0], hidden_sizes[1]), study_leaky()
        self.fc_hidden, self.lif_hidden = nn.Linear(hidden_sizes[1], feature_size), study_leaky()
        self.fc_out, self.lif_out = nn.Linear(feature_size, num_classes), study_leaky(output=True)

    def forward(self, x):
        for lif in (self.lif_input, self.lif1, self.lif_hidden, self.lif_out):
            lif.reset_mem()
        counts, features = 0, []
        for t in range(x.shape[1]):
            spk_in = f64(self.lif_input(self.fc_input(x[:, t])))
            spk1 = f64(self.lif1(self.fc1(spk_in)))
            spk_hidden = f64(self.lif_hidden(self.fc_hidden(spk1)))
            spk_out, _ = self.lif_out(self.fc_out(spk_hidden))
            counts = counts + f64(spk_out)
            features.append(spk_hidden)
        return counts, torch.stack(features).mean(0)


def copy_weights(ours: nn.Module, theirs: nn.Module) -> dict:
    """Our encoder/head layer names are the reference's; returns our parameter name -> theirs."""
    mapping = {}
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        short = name.split(".", 1)[1]
        assert short in their_params, name
        with torch.no_grad():
            their_params[short].copy_(p)
        mapping[name] = short
    assert len(mapping) == len(their_params)  # every layer of the reference is covered
    return mapping


def excite(model: nn.Module, gain: float = 3.0) -> None:
    """Scale weights so every layer of a small random net fires (see test_models.excite)."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(gain)
                layer.bias.add_(0.05 * gain)


CASES = {
    "visual": dict(
        sizes=dict(input_shape=(2, 8, 8), hidden_sizes=(4, 8), feature_size=64),
        batch=3,
        steps=12,
        theirs=lambda: SnnTorchVisual((2, 8, 8), (4, 8), 64, 10),
        gain=3.0,
    ),
    "audio": dict(
        sizes=dict(input_shape=(40,), hidden_sizes=(64, 64), feature_size=64),
        batch=3,
        steps=12,
        theirs=lambda: SnnTorchAudio(40, (64, 64), 64, 10),
        gain=3.0,
    ),
    # the study's full audio sizes (700 -> 1024 -> 1024 -> 512 -> 10), batch 2
    "audio-study-size": dict(
        sizes={}, batch=2, steps=10, theirs=lambda: SnnTorchAudio(700, (1024, 1024), 512, 10), gain=4.0
    ),
}


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_m1_equals_snntorch_study_code(case, backend):
    """float64 forward: the engine and snnTorch sum in different orders (~1e-16 relative), so spikes
    are bitwise equal unless a membrane lies within that distance of the threshold (practically
    never with continuous random weights). snnTorch's spikes are float32 (see f64), so its
    backward carries float32 rounding: gradients agree to ~1e-7 of each tensor's largest entry
    (measured <= 7e-8), checked at 1e-6 of it. A different surrogate slope, reset or decay
    changes them by percent."""
    cfg = CASES[case]
    modality = case.split("-")[0]
    torch.manual_seed(0)
    ours = build_model("m1", modality, backend=backend, **cfg["sizes"]).double()
    excite(ours, cfg["gain"])
    theirs = cfg["theirs"]().double()
    mapping = copy_weights(ours, theirs)

    g = torch.Generator().manual_seed(1)
    x = (torch.rand((cfg["batch"], cfg["steps"]) + ours.input_shape, generator=g, dtype=torch.float64) < 0.3).double()
    labels = torch.randint(0, 10, (cfg["batch"],), generator=g)
    w = torch.randn(cfg["batch"], ours.feature_size, generator=g, dtype=torch.float64)

    out = ours(x)
    counts, features = theirs(x)
    assert torch.equal(out.logits, counts)
    assert torch.equal(out.features, features)
    assert torch.equal(out.rates, features)
    assert 0 < counts.sum() < counts.numel() * cfg["steps"]  # the output layer fires, not always
    assert 0 < features.mean() < 0.9

    (F.cross_entropy(out.logits, labels) + (out.features * w).sum()).backward()
    (F.cross_entropy(counts, labels) + (features * w).sum()).backward()
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        q = their_params[mapping[name]]
        scale = q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6 * scale, msg=lambda m: f"{name}: {m}")
    assert (
        ours.encoder.fc_input.weight.grad.abs().sum() > 0
        if modality == "audio"
        else ours.encoder.conv1.weight.grad.abs().sum() > 0
    )
