"""sparsespike.models: fused backends equal the reference backend, study-mode heads equal their
formulas, the study's topology and parameter counts, the joint model's routing, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsespike.models import (
    M4HGRN,
    MODEL_NAMES,
    JointModel,
    M1Baseline,
    M3Hopfield,
    ModelOutput,
    StudyGate,
    build_model,
    forward_modality,
    model_modalities,
)

# small sizes keep the suite fast; the full study sizes are built once below
SMALL = {
    "visual": dict(input_shape=(2, 8, 8), hidden_sizes=(4, 8), feature_size=64),
    "audio": dict(input_shape=(40,), hidden_sizes=(64, 64), feature_size=64),
}
JOINT_SMALL = dict(
    visual_input_shape=(2, 8, 8),
    visual_hidden_sizes=(4, 8),
    audio_input_shape=(40,),
    audio_hidden_sizes=(64, 64),
    feature_size=64,
)
BATCH, STEPS = 3, 8

# (name, options) per mode: engine mode and the reference code's heads
CONFIGS = [
    ("m1", {}),
    ("m2", {}),
    ("m3", {}),
    ("m3", {"memory": "study"}),
    ("m4", {}),
    ("m4", {"memory": "study"}),
    ("m5", {}),
    ("m5", {"memory": "study"}),
]


def excite(module: nn.Module, gain: float = 3.0) -> None:
    """Scale the spiking layers' weights so that every layer fires (10-30 % at default sizes);
    with PyTorch's default initialisation the deeper layers of a small random net stay silent,
    which would make equality tests vacuous."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(gain)
                if layer.bias is not None:
                    layer.bias.add_(0.05 * gain)


def spikes_input(shape, seed: int, dtype=torch.float64, density: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) < density).to(dtype)


def make_pair(build, backend: str, seed: int = 0):
    """The same model (same weights, float64) on ``backend`` and on backend="reference"."""
    torch.manual_seed(seed)
    fused = build(backend).double()
    for part in ("encoder", "encoders"):
        if hasattr(fused, part):
            excite(getattr(fused, part))
    excite(fused.head, 6.0)  # study mode's one LIF step needs a current above 1 to fire
    if getattr(fused, "memory_gate", None) is not None:
        fused.memory_gate.data.fill_(0.8)  # open the residual memory branch (0 at init)
    reference = build("reference").double()
    reference.load_state_dict(fused.state_dict())
    return fused, reference


def loss_of(out: ModelOutput, seed: int) -> torch.Tensor:
    """CE on the logits plus a random projection of features and rates, so every path (memory,
    encoder through the rates) receives gradient."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, out.logits.shape[1], (out.logits.shape[0],), generator=g)
    w_f = torch.randn(out.features.shape, generator=g, dtype=out.features.dtype)
    w_r = torch.randn(out.rates.shape, generator=g, dtype=out.rates.dtype)
    return F.cross_entropy(out.logits, labels) + (out.features * w_f).sum() + (out.rates * w_r).sum()


def assert_same(fused: nn.Module, reference: nn.Module, run) -> ModelOutput:
    """Forward and backward of both; spikes exactly equal, floats and gradients within tolerance.

    Tolerance: float64 throughout. The fused kernels sum in another order than torch (event lists,
    tiles), which moves a membrane by ~1e-16 relative; a spike flips only if a membrane lies that
    close to the threshold, which continuous random weights make practically impossible. So the
    spike outputs (logits, rates) must be bitwise equal, and features / gradients agree to 1e-9
    relative: a wrong kernel (a dropped event, a wrong surrogate, a wrong reset) is off by far more.
    """
    out_f, out_r = run(fused), run(reference)
    assert torch.equal(out_f.logits, out_r.logits)
    assert torch.equal(out_f.rates, out_r.rates)
    torch.testing.assert_close(out_f.features, out_r.features, rtol=1e-9, atol=1e-12)
    loss_of(out_f, 1).backward()
    loss_of(out_r, 1).backward()
    grads_r = dict(reference.named_parameters())
    for name, p in fused.named_parameters():
        q = grads_r[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")
    return out_f


@pytest.mark.parametrize("backend", ["auto", "cpp"])
@pytest.mark.parametrize("modality", ["visual", "audio"])
@pytest.mark.parametrize("name, options", CONFIGS[:1] + CONFIGS[2:], ids=lambda v: str(v) if v else "")
def test_fused_equals_reference(name, options, modality, backend):
    fused, reference = make_pair(
        lambda b: build_model(name, modality, backend=b, **SMALL[modality], **options), backend
    )
    x = spikes_input((BATCH, STEPS) + fused.input_shape, seed=2)
    out = assert_same(fused, reference, lambda m: m(x))
    # meaningful: the spike layer and the output layer fire, the first layer learns
    assert out.rates.sum() > 0 and out.logits.sum() > 0
    first = next(fused.encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("memory", ["sequence", "study"])
@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_joint_fused_equals_reference(memory, modality):
    fused, reference = make_pair(lambda b: JointModel(backend=b, memory=memory, **JOINT_SMALL), "auto")
    shape = (2, 8, 8) if modality == "visual" else (40,)
    x = spikes_input((BATCH, STEPS) + shape, seed=3)
    out = assert_same(fused, reference, lambda m: m(x, modality))
    assert out.rates.sum() > 0


# compact-support surrogates: a truncated fast sigmoid (wide enough that every layer has neurons
# in the band at these sizes) and the triangle
BANDED = [{"grad_band": 0.5}, {"surrogate": "triangle"}]


def spike_layer_masks(model: nn.Module, monkeypatch) -> list:
    """Record the grad_mask every spike layer of ``model`` gets (None: a dense input gradient)."""
    import sparsespike.nn.conv as conv_module
    import sparsespike.nn.linear as linear_module

    seen = []
    for module, name in ((linear_module, "spike_linear"), (conv_module, "spike_conv2d")):
        original = getattr(module, name)

        def recording(*args, _original=original, grad_mask=None, **kwargs):
            seen.append(grad_mask)
            return _original(*args, grad_mask=grad_mask, **kwargs)

        monkeypatch.setattr(module, name, recording)
    return seen


@pytest.mark.parametrize("banded", BANDED, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
@pytest.mark.parametrize("modality", ["visual", "audio"])
@pytest.mark.parametrize("name, options", [CONFIGS[0], CONFIGS[4]], ids=lambda v: str(v) if v else "")
def test_band_limited_gradients_equal_reference(name, options, modality, banded, monkeypatch):
    """With a compact-support surrogate the encoders pass each LIF's band to the next spike
    layer, whose input gradient the kernels then compute only there: every parameter's gradient
    still equals the reference backend's (which masks through the graph)."""
    fused, reference = make_pair(
        lambda b: build_model(name, modality, backend=b, **SMALL[modality], **options, **banded), "cpp"
    )
    masks = spike_layer_masks(fused, monkeypatch)
    x = spikes_input((BATCH, STEPS) + fused.input_shape, seed=2)
    out = assert_same(fused, reference, lambda m: m(x))
    assert out.rates.sum() > 0
    # the first layer reads the input (no band); the encoder's next two read a LIF's spikes
    assert masks[0] is None and all(m is not None and m.dtype == torch.bool for m in masks[1:3])
    fractions = {
        n: float(m.band_fraction) for n, m in fused.named_modules() if getattr(m, "band_fraction", None) is not None
    }
    # a grad_band truncates the hidden LIFs only; the triangle is every LIF's surrogate
    assert len(fractions) == (4 if "surrogate" in banded else 2), fractions
    assert all(0 < f < 1 for f in fractions.values()), fractions


@pytest.mark.parametrize("banded", BANDED, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()))
def test_band_limited_triton_equals_reference(banded):
    """The same on the Triton kernels (the interpreter on CPU; audio: the linear layers only)."""
    fused, reference = make_pair(lambda b: build_model("m1", "audio", backend=b, **SMALL["audio"], **banded), "triton")
    x = spikes_input((BATCH, STEPS, 40), seed=2)
    assert assert_same(fused, reference, lambda m: m(x)).rates.sum() > 0


def test_exact_surrogate_passes_no_band(monkeypatch):
    model = build_model("m1", "audio", backend="cpp", **SMALL["audio"])
    masks = spike_layer_masks(model, monkeypatch)
    model(spikes_input((BATCH, STEPS, 40), seed=1, dtype=torch.float32))
    assert masks and all(m is None for m in masks)


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_joint_band_limited_equals_reference(modality):
    fused, reference = make_pair(lambda b: JointModel(backend=b, grad_band=0.5, **JOINT_SMALL), "cpp")
    shape = (2, 8, 8) if modality == "visual" else (40,)
    x = spikes_input((BATCH, STEPS) + shape, seed=3)
    assert_same(fused, reference, lambda m: m(x, modality))
    encoder = fused.encoders[modality]
    assert fused.surrogate.grad_band == 0.5 and fused.head.lif_out.grad_band is None
    assert [m.grad_band for m in encoder.modules() if hasattr(m, "grad_band")] == [0.5, 0.5, None]


def test_surrogate_options_reach_every_lif():
    from sparsespike.nn import LIF

    model = build_model("m4", "visual", surrogate="triangle", surrogate_param=2.0, **SMALL["visual"])
    lifs = [m for m in model.modules() if isinstance(m, LIF)]
    assert len(lifs) == 4 and all(m.surrogate == "triangle" and m.surrogate_param == 2.0 for m in lifs)
    study = build_model("m1", "audio", **SMALL["audio"])
    assert all(m.surrogate_param == 25.0 and m.grad_band is None for m in study.modules() if isinstance(m, LIF))
    with pytest.raises(ValueError, match="surrogate must be one of"):
        build_model("m1", "audio", surrogate="relu", **SMALL["audio"])
    with pytest.raises(ValueError, match="grad_band"):
        build_model("m1", "audio", grad_band=-0.1, **SMALL["audio"])


@pytest.mark.parametrize("modality", ["visual", "audio"])
@pytest.mark.parametrize("name, options", CONFIGS, ids=lambda v: str(v) if v else "")
def test_output_shapes_and_attributes(name, options, modality):
    model = build_model(name, modality, num_classes=7, **SMALL[modality], **options)
    x = spikes_input((2, 5) + model.input_shape, seed=4, dtype=torch.float32)
    out = model(x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 7) and out.features.shape == (2, 64) and out.rates.shape == (2, 64)
    assert out.logits.dtype == torch.float32
    # logits are spike counts: integers in [0, T] (engine mode) or 0/1 (one LIF step, study mode)
    study = "study" in options.values()
    assert torch.equal(out.logits, out.logits.round()) and out.logits.min() >= 0
    assert out.logits.max() <= (1 if study else 5)
    assert model.supcon_weight == (0.1 if name in ("m2", "m5") else 0.0)
    assert model.supcon_temperature == 0.07
    # bool spikes are accepted as input and give the same result
    assert torch.equal(model(x.bool()).logits, out.logits)


def test_registry():
    assert MODEL_NAMES == ("m1", "m2", "m3", "m4", "m5", "joint")
    assert isinstance(build_model("joint", "both", **JOINT_SMALL), JointModel)
    assert isinstance(build_model("joint", None, **JOINT_SMALL), JointModel)
    assert type(build_model("m4", "audio", **SMALL["audio"])) is M4HGRN
    m = build_model("m2", "audio", supcon_weight=0.5, **SMALL["audio"])
    assert m.supcon_weight == 0.5
    assert build_model("joint", **JOINT_SMALL).num_classes == 10


@pytest.mark.parametrize(
    "name, keyword, old, memory",
    [
        ("m3", "hopfield", "sequence", "sequence"),
        ("m3", "hopfield", "study", "study"),
        ("m4", "hgrn", "qin", "sequence"),
        ("m4", "hgrn", "study", "study"),
        ("m5", "hgrn", "qin", "sequence"),
        ("m5", "hgrn", "study", "study"),
        ("joint", "hgrn", "qin", "sequence"),
        ("joint", "hgrn", "study", "study"),
    ],
)
def test_hgrn_and_hopfield_are_deprecated_names_of_memory(name, keyword, old, memory):
    sizes = JOINT_SMALL if name == "joint" else SMALL["audio"]
    message = f"{keyword}= is deprecated: use memory= \\({keyword}='{old}' is memory='{memory}'\\)"
    with pytest.warns(DeprecationWarning, match=message) as caught:
        aliased = build_model(name, "audio", **sizes, **{keyword: old})
    assert caught[0].filename == __file__  # attributed to the caller's line, not to sparsespike
    current = build_model(name, "audio", **sizes, memory=memory)
    assert aliased.memory_mode == current.memory_mode == memory
    assert {k: v.shape for k, v in aliased.state_dict().items()} == {
        k: v.shape for k, v in current.state_dict().items()
    }
    with pytest.raises(TypeError, match="pass memory= only"):
        build_model(name, "audio", **sizes, memory=memory, **{keyword: old})
    with pytest.raises(ValueError, match=f"{keyword} must be one of"):
        build_model(name, "audio", **sizes, **{keyword: "gru"})


def test_the_old_value_qin_is_a_deprecated_name_of_sequence():
    # the memory mode took hgrn's place in the signature: M4HGRN("audio", 10, None, "qin") still works
    with pytest.deprecated_call(match="memory='qin' is deprecated: use memory='sequence'"):
        model = M4HGRN("audio", 10, None, "qin", **SMALL["audio"])
    assert model.memory_mode == "sequence"
    with pytest.deprecated_call(match="use memory='sequence'"):
        assert JointModel(10, None, "qin", **JOINT_SMALL).memory_mode == "sequence"


def test_every_model_says_which_modalities_it_takes_and_takes_its_batch_with_one():
    """The contract callers rely on instead of model names (sparsespike.models.contract)."""
    assert {name: model_modalities(name) for name in MODEL_NAMES} == {
        **dict.fromkeys(("m1", "m2", "m3", "m4", "m5")),
        "joint": ("visual", "audio"),
    }
    joint = build_model("joint", **JOINT_SMALL)
    assert joint.modalities == ("visual", "audio")
    x = spikes_input((2, 5, 40), seed=4, dtype=torch.float32)
    for name in ("m1", "m4"):
        model = build_model(name, "audio", **SMALL["audio"])
        assert model.modalities == ("audio",)
        assert torch.equal(model(x, "audio").logits, model(x).logits)
        with pytest.raises(ValueError, match="modality 'visual' differs from the model's 'audio'"):
            model(x, "visual")
        assert forward_modality(model, "audio") is None and forward_modality(model, None) is None
        with pytest.raises(ValueError, match="differs"):
            forward_modality(model, "visual")
    assert forward_modality(joint, "audio") == "audio"
    with pytest.raises(ValueError, match="modality must be one of"):
        forward_modality(joint, None)
    assert forward_modality(nn.Linear(2, 2), "audio") == "audio"  # a module that says nothing: as given


def _direct_gate(gate: StudyGate, x, h):
    """The reference's ImprovedHGRNGate written out from its weights."""

    def branch(linear, norm, inp):
        return F.layer_norm(inp @ linear.weight.T + linear.bias, (gate.hidden_size,), norm.weight, norm.bias)

    xh = torch.cat([x, h], 1)
    r = torch.sigmoid(branch(gate.W_r, gate.ln_r, xh))
    z = torch.sigmoid(branch(gate.W_z, gate.ln_z, xh))
    cand = torch.tanh(branch(gate.W_h, gate.ln_h, torch.cat([x, r * h], 1)))
    return (1 - z) * h + z * cand


def test_study_gate_equals_formula():
    torch.manual_seed(0)
    gate = StudyGate(24, 16).double()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for ln in (gate.ln_r, gate.ln_z, gate.ln_h):
            ln.weight.normal_(1.0, 0.3)
            ln.bias.normal_(0.0, 0.3)
    x = torch.randn(5, 24, dtype=torch.float64)
    h = torch.randn(5, 16, dtype=torch.float64)
    torch.testing.assert_close(gate(x, h), _direct_gate(gate, x, h), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gate(x), _direct_gate(gate, x, torch.zeros_like(h)), rtol=1e-12, atol=1e-12)
    # xavier-uniform weights, as the reference initialises them
    bound = math.sqrt(6 / (40 + 16))
    for linear in (gate.W_r, gate.W_z, gate.W_h):
        assert linear.weight.abs().max() <= bound and linear.weight.abs().max() > 0.8 * bound
    with pytest.raises(ValueError, match="x must be"):
        gate(torch.randn(5, 23, dtype=torch.float64))
    with pytest.raises(ValueError, match="h must be"):
        gate(x, torch.zeros(5, 15, dtype=torch.float64))


@pytest.mark.parametrize(
    "name, options", [("m3", {"memory": "study"}), ("m4", {"memory": "study"}), ("m5", {"memory": "study"})]
)
def test_study_heads_equal_reference_formula(name, options):
    """Study mode is the reference's head: memory on the time-mean spikes (Hopfield, then the gate),
    Linear -> one LIF step from zero (spike iff current > threshold 1)."""
    torch.manual_seed(0)
    model = build_model(name, "audio", **SMALL["audio"], **options).double()
    excite(model.encoder)
    excite(model.head, 6.0)
    x = spikes_input((4, 6, 40), seed=5)
    out = model(x)
    rates = model.encode(x).mean(0)
    torch.testing.assert_close(out.rates, rates)
    features = rates
    if hasattr(model, "hopfield"):  # the reference's ModernHopfieldLayer, written out
        memory = F.normalize(model.hopfield.patterns, dim=1)
        scores = F.normalize(features, dim=1) @ memory.T / math.sqrt(64) / 0.1
        features = model.hopfield.norm(torch.softmax(scores, dim=1) @ memory + features)
    if hasattr(model, "hgrn"):
        features = _direct_gate(model.hgrn, features, torch.zeros_like(features))
    torch.testing.assert_close(out.features, features, rtol=1e-10, atol=1e-12)
    current = model.head.fc_out(features)
    assert torch.equal(out.logits, (current > 1.0).double())
    assert 0 < out.logits.sum() < out.logits.numel()  # some classes fire, some not


def test_engine_mode_memories_run_over_time():
    """Engine mode: the Hopfield reads each time step's spikes, the head integrates over time."""
    torch.manual_seed(0)
    model = M3Hopfield("audio", **SMALL["audio"]).double()
    excite(model.encoder)
    model.memory_gate.data.fill_(0.5)
    x = spikes_input((2, 6, 40), seed=6)
    out = model(x)
    spikes = model.encode(x)
    per_step = torch.stack([model.hopfield(spikes[t]) for t in range(spikes.shape[0])])
    head_input = spikes + model.memory_gate * per_step
    torch.testing.assert_close(out.features, head_input.mean(0))
    torch.testing.assert_close(out.logits, model.head(head_input).sum(0))


def _copy_joint_to_m4(joint: JointModel, modality: str) -> M4HGRN:
    m4 = M4HGRN(modality, **SMALL[modality]).double()
    state = {f"encoder.{k}": v for k, v in joint.encoders[modality].state_dict().items()}
    state.update({f"hgrn.{k}": v for k, v in joint.hgrn.state_dict().items()})
    state.update({f"head.{k}": v for k, v in joint.head.state_dict().items()})
    state["memory_gate"] = joint.memory_gate.detach()
    m4.load_state_dict(state)
    return m4


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_joint_routes_each_modality_and_shares_the_rest(modality):
    torch.manual_seed(0)
    joint = JointModel(**JOINT_SMALL).double()
    for encoder in joint.encoders.values():
        excite(encoder)
    other = "audio" if modality == "visual" else "visual"
    shape = (2, 8, 8) if modality == "visual" else (40,)
    x = spikes_input((3, 6) + shape, seed=7)
    out = joint(x, modality)
    # the joint model on one modality is M4 with that encoder and the shared HGRN and head
    expected = _copy_joint_to_m4(joint, modality)(x)
    assert torch.equal(out.logits, expected.logits)
    torch.testing.assert_close(out.features, expected.features)
    loss_of(out, 2).backward()
    assert all(p.grad is None for p in joint.encoders[other].parameters())
    assert all(p.grad is not None for p in joint.encoders[modality].parameters())
    assert all(p.grad is not None for p in joint.hgrn.parameters())
    assert all(p.grad is not None for p in joint.head.parameters())


def test_study_sizes_topology_and_parameter_counts():
    """The study's exact layers at full size (Models/backbones.py of the reference code)."""
    audio = build_model("m1", "audio")
    enc = audio.encoder
    assert [(m.in_features, m.out_features) for m in (enc.fc_input, enc.fc1, enc.fc_hidden, audio.head.fc_out)] == [
        (700, 1024),
        (1024, 1024),
        (1024, 512),
        (512, 10),
    ]
    # 700*1024+1024 + 1024*1024+1024 + 1024*512+512 + 512*10+10
    assert sum(p.numel() for p in audio.parameters()) == 2_297_354
    for lif in (enc.lif_input, enc.lif1, enc.lif_hidden, audio.head.lif_out):
        assert torch.equal(lif.beta, torch.tensor(0.9)) and torch.equal(lif.threshold, torch.tensor(1.0))
        assert (lif.reset, lif.surrogate, lif.surrogate_param, lif.convention) == (
            "subtract",
            "fast_sigmoid",
            25.0,
            "snntorch",
        )
    out = audio(spikes_input((2, 100, 700), seed=8, dtype=torch.float32, density=0.05))
    assert out.logits.shape == (2, 10) and out.features.shape == (2, 512) and out.rates.shape == (2, 512)
    # memories: Hopfield 256x512 patterns + LayerNorm(512); HGRN(512): in_proj 512x1536 (no bias),
    # RMSNorm 512, out_proj 512x512; study gate: 3 x Linear(1024, 512) + 3 x LayerNorm(512)
    hopfield, hgrn, gate = 256 * 512 + 2 * 512, 512 * 1536 + 512 + 512 * 512, 3 * (1024 * 512 + 512) + 3 * 1024
    # + 1: engine mode's residual memory gate
    counts = {
        ("m3", ()): hopfield + 1,
        ("m4", ()): hgrn + 1,
        ("m4", ("memory", "study")): gate,
        ("m5", ()): hopfield + hgrn + 1,
        ("m5", ("memory", "study")): hopfield + gate,
    }
    for (name, opt), extra in counts.items():
        model = build_model(name, "audio", **dict([opt] if opt else []))
        assert sum(p.numel() for p in model.parameters()) == 2_297_354 + extra, (name, opt)

    visual = build_model("m1", "visual")
    enc = visual.encoder
    assert (enc.conv1.in_channels, enc.conv1.out_channels, enc.conv1.kernel_size, enc.conv1.padding) == (
        2,
        64,
        (3, 3),
        (1, 1),
    )
    assert (enc.conv2.in_channels, enc.conv2.out_channels, enc.conv2.kernel_size, enc.conv2.padding) == (
        64,
        128,
        (3, 3),
        (1, 1),
    )
    assert (enc.fc1.in_features, enc.fc1.out_features) == (128 * 34 * 34, 512)
    # 2*64*9+64 + 64*128*9+128 + 128*34*34*512+512 + 512*10+10
    assert sum(p.numel() for p in visual.parameters()) == 75_840_330
    out = visual(spikes_input((1, 2, 2, 34, 34), seed=9, dtype=torch.float32, density=0.1))
    assert out.logits.shape == (1, 10) and out.features.shape == (1, 512)


def test_bad_input():
    model = build_model("m1", "visual", **SMALL["visual"])
    with pytest.raises(ValueError, match=r"x must be \[B, T, 2, 8, 8\].*got shape \[3, 2, 8, 8\]"):
        model(torch.zeros(3, 2, 8, 8))
    with pytest.raises(ValueError, match=r"x must be \[B, T, 2, 8, 8\].*got shape \[1, 4, 3, 8, 8\]"):
        model(torch.zeros(1, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="B >= 1 and T >= 1"):
        model(torch.zeros(1, 0, 2, 8, 8))
    with pytest.raises(TypeError, match="x must be floating point"):
        model(torch.zeros(1, 4, 2, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="x has dtype torch.float64"):
        model(torch.zeros(1, 4, 2, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([[0.0]])
    audio = build_model("m4", "audio", **SMALL["audio"])
    with pytest.raises(ValueError, match=r"x must be \[B, T, 40\] \(audio input"):
        audio(torch.zeros(2, 5, 1, 40))
    joint = JointModel(**JOINT_SMALL)
    with pytest.raises(ValueError, match="modality must be one of"):
        joint(torch.zeros(2, 5, 40), "text")
    with pytest.raises(ValueError, match=r"x must be \[B, T, 2, 8, 8\] \(visual input"):
        joint(torch.zeros(2, 5, 40), "visual")
    with pytest.raises(ValueError, match="name must be one of"):
        build_model("m6", "audio")
    with pytest.raises(ValueError, match="modality must be one of"):
        build_model("m1", "tactile")
    with pytest.raises(ValueError, match="memory must be one of"):
        build_model("m4", "audio", memory="gru", **SMALL["audio"])
    with pytest.raises(ValueError, match="memory must be one of"):
        build_model("m3", "audio", memory="mean", **SMALL["audio"])
    with pytest.raises(ValueError, match=r"memory must be one of \('sequence',\) for m1 \(no memory"):
        build_model("m1", "audio", memory="study")  # M1 has no memory to configure
    with pytest.raises(TypeError):
        build_model("m1", "audio", hgrn="study")  # nor did it take the old keyword
    with pytest.raises(ValueError, match="input_shape must be 3 positive ints"):
        M1Baseline("visual", input_shape=(34, 34))
    with pytest.raises(ValueError, match="hidden_sizes must be 2 positive ints"):
        M1Baseline("audio", hidden_sizes=(1024,))
    with pytest.raises(ValueError, match="backend"):
        M1Baseline("audio", backend="gpu", **{k: v for k, v in SMALL["audio"].items()})


# ----------------------------------------------------------------------------- readout


def _leaky_mean(current: torch.Tensor, beta: float = 0.9) -> torch.Tensor:
    """The mean over time of v_t = beta v_{t-1} + I_t from v_0 = 0, step by step."""
    v, total = torch.zeros_like(current[0]), torch.zeros_like(current[0])
    for t in range(current.shape[0]):
        v = beta * v + current[t]
        total = total + v
    return total / current.shape[0]


@pytest.mark.parametrize("name, options", CONFIGS)
@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_membrane_readout_is_the_mean_membrane_of_the_output_layer(name, options, backend):
    """readout="membrane": logits = mean over time of the output neurons' membrane, integrated
    without threshold or reset (study mode: one step, so the head's current); the rest of the model
    as with counts, and a gradient reaches the head where a count would have none."""
    torch.manual_seed(0)
    model = build_model(name, "audio", **SMALL["audio"], **options, readout="membrane", backend=backend).double()
    excite(model.encoder)
    counting = build_model(name, "audio", **SMALL["audio"], **options, backend=backend).double()
    counting.load_state_dict(model.state_dict())  # same keys: checkpoints move between readouts
    x = spikes_input((4, 6, 40), seed=5)
    out, counted = model(x), counting(x)
    torch.testing.assert_close(out.features, counted.features)
    seen = {}
    handle = model.head.fc_out.register_forward_hook(lambda m, a, o: seen.__setitem__("current", o))
    out = model(x)
    handle.remove()
    current = seen["current"]
    want = current[0] if model._study_readout else _leaky_mean(current, float(model.head.lif_out.beta))
    torch.testing.assert_close(out.logits, want, rtol=1e-10, atol=1e-12)
    # far below threshold every count is 0 and passes no gradient; the membrane still does
    with torch.no_grad():
        model.head.fc_out.bias.fill_(-50.0)
        counting.head.fc_out.bias.fill_(-50.0)
    (grad,) = torch.autograd.grad(model(x).logits[:, 0].sum(), model.head.fc_out.weight)
    assert bool(grad.abs().sum() > 0)
    assert float(counting(x).logits.detach().abs().sum()) == 0.0


def test_readout_is_checked():
    with pytest.raises(ValueError, match="readout must be one of"):
        build_model("m1", "audio", **SMALL["audio"], readout="max")
    with pytest.raises(ValueError, match="readout must be one of"):
        JointModel(**JOINT_SMALL, readout="rate")
    joint = JointModel(**JOINT_SMALL, readout="membrane")
    assert joint.head.readout == "membrane"
