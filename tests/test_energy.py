"""Energy: the study's arithmetic, profiles, and per-layer SynOps against brute-force counts."""

import pytest
import torch
import torch.nn.functional as F
from spike_data import firing_model

from sparsespike.energy import PROFILES, EnergyMeter, EnergyProfile, estimate, get_profile, measure_energy
from sparsespike.nn import LIF


def test_reproduces_the_studys_numbers():
    # the study's M1 table: 6,495,671 SynOps vs 413,840,000 MACs at 0.9 / 4.6 pJ
    e = estimate(6_495_671, 413_840_000, "45nm-fp32")
    assert round(e.snn_uj, 2) == 5.85 and round(e.ann_uj, 1) == 1903.7 and round(e.ratio, 1) == 325.6


def test_profiles():
    assert PROFILES["45nm-fp32"].accumulate_pj == 0.9 and PROFILES["45nm-fp32"].mac_pj == 4.6
    custom = EnergyProfile("mine", 0.5, 2.0)
    assert get_profile(custom) is custom
    assert estimate(10, 10, custom).ratio == pytest.approx(4.0)
    with pytest.raises(ValueError, match="unknown energy profile"):
        get_profile("7nm")
    with pytest.raises(ValueError, match="mac_pj"):
        EnergyProfile("bad", 0.5, 0.0)
    with pytest.raises(ValueError, match="synops"):
        estimate(-1, 10)


def _record_inputs(model):
    """Every Linear / Conv2d input and every LIF output of one run, recorded independently."""
    inputs, spikes, handles = {}, {}, []
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            handles.append(module.register_forward_hook(lambda m, a, o, n=name: inputs.__setitem__(n, (m, a[0]))))
        if isinstance(module, LIF):
            handles.append(module.register_forward_hook(lambda m, a, o, n=name: spikes.__setitem__(n, o)))
    return inputs, spikes, handles


def _brute_synops(module, x):
    if isinstance(module, torch.nn.Conv2d):
        indicator = (x != 0).to(torch.float64).reshape(-1, *x.shape[-3:])
        ones = torch.ones(1, module.in_channels, *module.kernel_size, dtype=torch.float64)
        reach = F.conv2d(indicator, ones, stride=module.stride, padding=module.padding, dilation=module.dilation)
        return int(reach.sum().round()) * module.out_channels
    return int(torch.count_nonzero(x)) * module.out_features


@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_meter_counts_equal_brute_force(modality):
    torch.manual_seed(0)
    if modality == "audio":
        model = firing_model("m4", "audio", hidden_sizes=(64, 64), feature_size=32)
        x = (torch.rand(3, 12, 700) < 0.05).float()
    else:
        model = firing_model("m1", "visual", hidden_sizes=(4, 8), feature_size=16)
        x = torch.randint(0, 3, (2, 5, 2, 34, 34)).float() * (torch.rand(2, 5, 2, 34, 34) < 0.05)
    inputs, spikes, handles = _record_inputs(model)
    with EnergyMeter(model) as meter:
        model(x)
    for h in handles:
        h.remove()
    layers = {r["name"]: r for r in meter.layers()}
    assert set(layers) == set(inputs)
    for name, (module, inp) in inputs.items():
        assert layers[name]["synops"] == _brute_synops(module, inp), name
        assert layers[name]["input_density"] == pytest.approx(float((inp != 0).float().mean()))
        assert layers[name]["binary_input"] == bool(((inp == 0) | (inp == 1)).all())
    first = "encoder.fc_input" if modality == "audio" else "encoder.conv1"
    assert layers["head.fc_out"]["output_density"] == pytest.approx(float((spikes["head.lif_out"] != 0).float().mean()))
    assert layers[first]["binary_input"] == (modality == "audio")  # visual frames hold event counts
    total = sum(r["synops"] for r in layers.values())
    assert total > 0
    macs = sum(r["macs"] for r in layers.values())
    as_synops = meter.estimate(real_input="synop")
    assert as_synops.synops == total and as_synops.macs == macs
    as_macs = meter.estimate(real_input="mac")
    real = [r for r in layers.values() if not r["binary_input"]]
    assert as_macs.synops == total - sum(r["synops"] for r in real)
    assert as_macs.snn_uj == pytest.approx((as_macs.synops * 0.9 + sum(r["macs"] for r in real) * 4.6) * 1e-6)


def test_hopfield_scores_count_as_other_synops():
    torch.manual_seed(0)
    model = firing_model("m3", "audio", hidden_sizes=(64, 64), feature_size=32)
    x = (torch.rand(2, 10, 700) < 0.05).float()
    captured = {}
    handle = model.encoder.lif_hidden.register_forward_hook(lambda m, a, o: captured.__setitem__("s", o))
    with EnergyMeter(model) as meter:
        model(x)
    handle.remove()
    # the scores q P^T of each time step: query nonzeros x stored patterns (256)
    assert meter.other_synops == int(torch.count_nonzero(captured["s"])) * 256 > 0
    assert meter.estimate().synops == sum(r["synops"] for r in meter.layers() if r["binary_input"]) + meter.other_synops


def test_report_totals_are_the_meters_per_inference():
    torch.manual_seed(0)
    model = firing_model("m4", "audio", hidden_sizes=(64, 64), feature_size=32)
    x = (torch.rand(6, 10, 700) < 0.05).float()
    labels = torch.arange(6) % 10
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]
    report = measure_energy(model, batches, max_samples=5, model_name="m4", dataset_name="toy")
    assert report.samples == 5  # the second batch is cut to the one sample left
    with EnergyMeter(model) as meter, torch.no_grad():
        model.eval()
        model(x[:5])
    for rule in ("mac", "synop"):
        total, per = meter.estimate(real_input=rule), report.per_inference(real_input=rule)
        assert per["synops"] == pytest.approx(total.synops / 5) and per["macs"] == pytest.approx(total.macs / 5)
        assert per["snn_uj"] == pytest.approx(total.snn_uj / 5) and per["ratio"] == pytest.approx(total.ratio)
    spikes = sum(r.spikes_out for r in meter.records.values())
    neurons = sum(r.neurons_out for r in meter.records.values())
    assert report.activation_sparsity == pytest.approx(1 - spikes / neurons)
    table = report.markdown("45nm-int8")
    assert "| encoder.fc_input | linear |" in table and "| mac |" in table and "| synop |" in table
    as_dict = report.as_dict(["45nm-fp32", EnergyProfile("mine", 0.1, 1.0)])
    assert set(as_dict["profiles"]) == {"45nm-fp32", "mine"}
    assert as_dict["profiles"]["mine"]["synop"]["ratio"] == pytest.approx(10 * per["macs"] / per["synops"])
    with pytest.raises(ValueError, match="max_samples"):
        measure_energy(model, batches, max_samples=0)
    with pytest.raises(ValueError, match="no samples"):
        measure_energy(model, [])


def test_energy_cli_on_a_checkpoint(tmp_path, capsys):
    import json

    from sparsespike.energy.__main__ import main
    from sparsespike.training import TrainConfig, fit

    fit(
        TrainConfig(
            model="m4",
            dataset="randman",
            epochs=1,
            batch_size=16,
            limit_train=32,
            limit_eval=16,
            out=str(tmp_path / "run"),
            progress=False,
            cache_dir=str(tmp_path / "cache"),
            model_options={"hidden_sizes": (48, 48), "feature_size": 32},
        )
    )
    capsys.readouterr()
    out = tmp_path / "energy.json"
    assert (
        main(
            [
                "--checkpoint",
                str(tmp_path / "run" / "best.pt"),
                "--samples",
                "12",
                "--batch-size",
                "8",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--json",
                str(out),
                "--no-progress",
                "--accumulate-pj",
                "0.5",
                "--mac-pj",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "m4 on randman: 12 samples" in printed and "hgrn.in_proj" in printed
    payload = json.loads(out.read_text())
    result = payload["results"][0]
    assert payload["trained"] and result["samples"] == 12 and {"45nm-fp32", "custom"} <= set(result["profiles"])
    custom = result["profiles"]["custom"]["synop"]
    assert custom["snn_uj"] == pytest.approx(custom["synops"] * 0.5e-6)
    assert main(["--checkpoint", str(tmp_path / "run" / "best.pt"), "--model", "m1"]) == 2
    assert main(["--model", "m1", "--profile", "7nm"]) == 2
    assert main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "error:" in capsys.readouterr().err
