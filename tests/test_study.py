"""python -m sparsespike.study --quick: every run trained, metered and analysed, the report folder
written from what was measured, an interrupted study continued, bad settings refused."""

import json
import re

import pytest
import torch

from sparsespike.study import StudyConfig
from sparsespike.study.__main__ import main
from sparsespike.study.plan import ALL_RUNS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    args = ["--quick", "--out", str(root / "out"), "--data-dir", str(root / "data"), "--no-progress"]
    assert main(args) == 0
    return root / "out", args


def _row(table: str, first_cell: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{table}")


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_every_run_is_trained_metered_and_analysed(quick_study):
    out, _ = quick_study
    results = json.loads((out / "results.json").read_text())
    expected = {f"{m}-{mod}-seed0" for m in ALL_RUNS if m != "joint" for mod in ("visual", "audio")}
    assert set(results["runs"]) == expected | {"joint-both-seed0"}  # --quick: one seed
    for key, run in results["runs"].items():
        assert (out / "runs" / key / "best.pt").exists() and run["epochs"] == 1 and run["seed"] == 0
        modalities = ("visual", "audio") if run["modality"] == "both" else (run["modality"],)
        assert set(run["energy"]) == set(modalities)
        for modality in modalities:
            energy = run["energy"][modality]
            assert energy["samples"] == 16 and 0.5 < energy["activation_sparsity"] < 1
            totals = energy["profiles"]["45nm-fp32"]
            layers = energy["layers"]
            # the totals are the per-layer kernel counts: binary-input layers as SynOps, the rest as MACs
            synops = sum(r["synops_per_inference"] for r in layers if r["binary_input"])
            assert totals["mac"]["synops"] == pytest.approx(synops + energy["other_synops_per_inference"])
            assert totals["mac"]["snn_uj"] == pytest.approx(
                (totals["mac"]["synops"] * 0.9 + totals["mac"]["snn_macs"] * 4.6) * 1e-6
            )
            assert totals["mac"]["macs"] == pytest.approx(sum(r["macs_per_inference"] for r in layers))
            assert (out / run["features"][modality]).exists()
    engram = json.loads((out / "engram.json").read_text())
    assert set(engram) == set(ALL_RUNS)
    for model, table in engram.items():
        assert table["visual"]["n_samples"] == table["audio"]["n_samples"] == 40  # 4 per class, 10 classes
        assert 0 <= table["visual-audio"]["zero_shot_visual_to_audio"] <= 100
        for suffix in ("", "-centered"):
            assert (out / "figures" / f"{model}-alignment{suffix}.png").read_bytes().startswith(PNG)
        for modality in ("visual", "audio"):
            assert (out / "figures" / f"{model}-{modality}-pca.png").read_bytes().startswith(PNG)


def test_the_report_prints_what_was_measured(quick_study):
    out, _ = quick_study
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    for heading in ("## Table I", "## Table II", "## Table III", "## Energy per inference", "## Figures"):
        assert heading in report
    table1 = (out / "tables" / "table1-accuracy.md").read_text()
    m3 = _row(table1, "M3 + modern Hopfield memory")
    assert m3[1] == "97.68" and m3[3] == "76.15"  # the study's numbers
    assert m3[2] == f"{results['runs']['m3-visual-seed0']['best_eval_acc']:.2f}"  # one seed: no spread
    assert m3[4] == f"{results['runs']['m3-audio-seed0']['best_eval_acc']:.2f}"
    sparsity = results["runs"]["m3-audio-seed0"]["energy"]["audio"]["activation_sparsity"]
    assert m3[8] == f"{100 * sparsity:.2f}"
    # the joint model's per-modality accuracies are those of its best epoch in metrics.jsonl
    history = [json.loads(line) for line in open(out / "runs" / "joint-both-seed0" / "metrics.jsonl")]
    joint = _row((out / "tables" / "table2-joint.md").read_text(), "joint: two encoders, shared HGRN and head")
    assert joint[2] == f"{history[0]['eval_visual_acc']:.2f}" and joint[4] == f"{history[0]['eval_audio_acc']:.2f}"
    energy = (out / "tables" / "energy.md").read_text()
    m4 = [line for line in energy.splitlines() if line.startswith("| m4 | visual |")][0]
    ratio = results["runs"]["m4-visual-seed0"]["energy"]["visual"]["profiles"]["45nm-fp32"]["mac"]["ratio"]
    assert f"| {ratio:.1f}x |" in m4 and m4.endswith("| 601x |")
    engram = json.loads((out / "engram.json").read_text())
    silhouette = engram["m4"]["visual"]["silhouette"]
    cells = _row((out / "tables" / "table3-engram-study.md").read_text(), "silhouette, M4 visual")
    assert cells[1] == "0.871" and cells[2] == ("-" if silhouette != silhouette else f"{silhouette:.3f}")
    assert "--quick" in report and re.search(r"took \d+\.\d min in all \(11 runs\)", report)
    assert "## Pattern" not in report  # one seed: no spread to tell a difference from noise
    assert "engram analysis: 4 visual, 4 audio test samples per class" in report


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_a_rerun_keeps_finished_runs_and_refuses_other_settings(quick_study, capsys):
    out, args = quick_study
    before = json.loads((out / "results.json").read_text())["runs"]
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, kept") == len(before)
    assert json.loads((out / "results.json").read_text())["runs"] == before
    assert main(args + ["--lr", "0.01"]) == 2
    assert "different settings" in capsys.readouterr().err


def test_bad_settings_are_refused(capsys):
    with pytest.raises(ValueError, match="audio dataset, expected a visual"):
        StudyConfig(visual="randman", audio="randman")
    with pytest.raises(ValueError, match="models"):
        StudyConfig(models=("m7",))
    with pytest.raises(ValueError, match="per_class"):
        StudyConfig(per_class=0)
    with pytest.raises(ValueError, match="calibrate"):
        StudyConfig(calibrate=("video",))
    # visual layers keep PyTorch's init by default; the joint model calibrates its audio side only
    config = StudyConfig()
    assert config.calibration("visual") == {"init": "default", "calibrate_modalities": None}
    assert config.calibration("both") == {"init": "calibrated", "calibrate_modalities": ("audio",)}
    assert main(["--datasets", "nmnist"]) == 2
    assert "two names" in capsys.readouterr().err
    assert main(["--datasets", "mnist,shd"]) == 2


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("lr", float("nan"), ValueError),
        ("lr", float("inf"), ValueError),
        ("epochs", 2.5, TypeError),
        ("batch_size", "32", TypeError),
        ("limit_train", 0, ValueError),
        ("grad_band", 0.0, ValueError),
        ("surrogate_param", float("inf"), ValueError),
        ("surrogate", "relu", ValueError),
        ("activity_target", 1.5, ValueError),
        ("activity_weight", -1.0, ValueError),
        ("readout", "max", ValueError),
    ],
)
def test_settings_must_be_finite_integers_or_numbers(field, value, error):
    # NaN compares false, so "not lr > 0" caught it but "lr < 0" checks would not; floats for counts
    with pytest.raises(error, match=field):
        StudyConfig(**{field: value})


def test_the_surrogate_and_band_reach_every_run(monkeypatch, tmp_path):
    from sparsespike.study import runner
    from sparsespike.study.__main__ import config_from_args

    config = config_from_args(
        ["--quick", "--out", str(tmp_path / "out"), "--grad-band", "0.4", "--surrogate-param", "9"]
    )
    assert (config.surrogate, config.surrogate_param, config.grad_band) == ("fast_sigmoid", 9.0, 0.4)
    seen = []
    summary = {"history": [], "best_eval_acc": 0.0, "best_epoch": 0, "epochs": 0, "stopped_early": False}
    monkeypatch.setattr(runner, "fit", lambda c: seen.append(c) or {**summary, "model": torch.nn.Linear(1, 1)})
    runner._train(config, "m1", "audio", 0, tmp_path / "run", "cpu", lambda *_: None)
    assert (seen[0].surrogate, seen[0].surrogate_param, seen[0].grad_band) == ("fast_sigmoid", 9.0, 0.4)


def test_the_activity_regulariser_and_readout_reach_every_run(monkeypatch, tmp_path):
    from sparsespike.study import runner
    from sparsespike.study.__main__ import config_from_args
    from sparsespike.study.plan import STUDY_ACTIVITY_WEIGHT

    default = config_from_args(["--quick", "--out", str(tmp_path / "d")])
    assert (default.activity_weight, default.activity_target, default.readout) == (
        STUDY_ACTIVITY_WEIGHT,
        0.03,
        "membrane",
    )
    assert STUDY_ACTIVITY_WEIGHT > 0  # on by default in the study
    config = config_from_args(
        ["--quick", "--out", str(tmp_path / "out"), "--activity-weight", "0", "--activity-target", "0.05"]
        + ["--readout", "count"]
    )
    seen = []
    summary = {"history": [], "best_eval_acc": 0.0, "best_epoch": 0, "epochs": 0, "stopped_early": False}
    monkeypatch.setattr(runner, "fit", lambda c: seen.append(c) or {**summary, "model": torch.nn.Linear(1, 1)})
    runner._train(config, "m1", "audio", 0, tmp_path / "run", "cpu", lambda *_: None)
    assert (seen[0].activity_weight, seen[0].activity_target, seen[0].readout) == (0.0, 0.05, "count")


def test_presets_set_the_budget_and_the_seeds(tmp_path):
    from sparsespike.study.__main__ import config_from_args
    from sparsespike.study.plan import STUDY_EPOCHS, STUDY_LR

    default = StudyConfig()  # the embedded sets: the measured recipe, all data, 3 seeds
    assert (default.size, default.epochs, default.lr, default.limit_train, default.limit_eval) == (
        "small",
        STUDY_EPOCHS,
        STUDY_LR,
        None,
        None,
    )
    assert default.seed_list == (0, 1, 2)
    full = StudyConfig(full=True)  # the study's sizes and budget on the embedded sets too
    assert (full.size, full.epochs, full.lr, full.seeds) == ("study", 30, 3e-4, 3)
    quick = StudyConfig(quick=True, seed=5)
    assert (quick.size, quick.seed_list) == ("tiny", (5,))
    assert StudyConfig(seeds=2, seed=3, lr=1e-3).seed_list == (3, 4) and StudyConfig(lr=1e-3).lr == 1e-3
    with pytest.raises(ValueError, match="two presets"):
        StudyConfig(quick=True, full=True)
    with pytest.raises(ValueError, match="seeds"):
        StudyConfig(seeds=0)
    with pytest.raises(ValueError, match="memory"):
        StudyConfig(memory="lstm")
    with pytest.raises(SystemExit):  # argparse: not allowed together
        config_from_args(["--quick", "--full", "--out", str(tmp_path / "o")])


def test_the_memory_mode_reaches_the_models_that_have_it(monkeypatch, tmp_path):
    from sparsespike.study import runner
    from sparsespike.study.__main__ import config_from_args

    seen = []
    summary = {"history": [], "best_eval_acc": 0.0, "best_epoch": 0, "epochs": 0, "stopped_early": False}
    monkeypatch.setattr(runner, "fit", lambda c: seen.append(c) or {**summary, "model": torch.nn.Linear(1, 1)})
    for flags, memory in (([], "study"), (["--memory", "sequence"], "sequence")):  # the reference heads by default
        seen.clear()
        config = config_from_args(["--quick", "--out", str(tmp_path / "out")] + flags)
        for model in ("m1", "m2", "m3", "m4", "m5", "joint"):
            runner._train(config, model, "both" if model == "joint" else "audio", 2, tmp_path / model, "cpu", print)
        assert [c.memory for c in seen] == ["sequence", "sequence"] + [memory] * 4
        assert {c.seed for c in seen} == {2}


def test_more_seeds_continue_a_finished_study(monkeypatch, tmp_path):
    from sparsespike.study import runner

    trained = []

    def fake_train(config, model, modality, seed, out, device, log):
        trained.append((model, seed))
        return {"model": model, "modality": modality, "seed": seed, "best_eval_acc": 50.0 + seed}

    monkeypatch.setattr(runner, "_train", fake_train)
    monkeypatch.setattr(runner, "_measure", lambda *a, **k: {"energy": {}, "features": {}})
    monkeypatch.setattr(runner, "write_report", lambda *a, **k: None)
    base = dict(quick=True, models=("m1",), out=str(tmp_path / "out"), data_dir=str(tmp_path / "data"))
    first = runner.run_study(StudyConfig(**base), log=None)["study_seconds"]
    assert trained == [("m1", 0), ("m1", 0)]  # visual, audio
    results = runner.run_study(StudyConfig(**base, seeds=2), log=None)  # seed 0 kept, seed 1 added
    assert trained[2:] == [("m1", 1), ("m1", 1)]
    assert results["study_seconds"] > first > 0  # summed over the invocations
    assert set(results["runs"]) == {f"m1-{m}-seed{s}" for m in ("visual", "audio") for s in (0, 1)}
    with pytest.raises(ValueError, match="different settings"):  # any other setting is refused
        runner.run_study(StudyConfig(**base, seeds=2, seed=1), log=None)


def _fake_run(model, modality, seed, accuracy, sparsity=0.98):
    modalities = ("visual", "audio") if modality == "both" else (modality,)
    run = {"model": model, "modality": modality, "seed": seed, "best_eval_acc": accuracy}
    run["energy"] = {m: {"activation_sparsity": sparsity} for m in modalities}
    return run


def test_table_one_and_the_pattern_take_mean_and_spread_over_seeds():
    from sparsespike.study import report
    from sparsespike.study.plan import run_key

    config = StudyConfig(models=("m1", "m2", "m3"))
    accuracy = {  # (visual, audio) per seed 0, 1, 2
        "m1": ((90, 90, 90), (70, 72, 74)),
        "m2": ((90, 91, 89), (80, 81, 82)),  # audio +9.0, beyond the spread 3.0: as the study (+2.12)
        "m3": ((95, 96, 97), (68, 72, 74)),  # visual +6, beyond 1.0; audio -0.67, within the spread
    }
    runs = {}
    for model, (visual, audio) in accuracy.items():
        for seed in range(3):
            for modality, values in (("visual", visual), ("audio", audio)):
                runs[run_key(model, modality, seed)] = _fake_run(model, modality, seed, float(values[seed]))
    results = {"runs": runs}
    m2 = _row(report.accuracy_table(results, config), "M2 + supervised contrastive loss")
    assert m2[2] == "90.00 ± 1.00" and m2[4] == "81.00 ± 1.00" and m2[6] == "85.50 ± 0.50"
    assert m2[7] == m2[8] == "98.00 ± 0.00"
    text = report.pattern(results, config)
    m3 = _row(text, "M3 + modern Hopfield memory")
    assert m3[1:4] == ["+6.00 (spread 1.00)", "yes", "+0.91"]
    assert m3[4].startswith("-0.67") and m3[5] == "no" and m3[6] == "-3.89"
    assert "M2 + supervised contrastive loss helps audio by 9.00 points, beyond the spread: as in the study" in text
    assert "M3 + modern Hopfield memory helps visual by 6.00 points, beyond the spread: as in the study" in text
    assert _row(text, "M2 + supervised contrastive loss")[2] == "no"  # visual 0.00, spread 2.00
    # within the spread everywhere: said so
    flat = {k: {**r, "best_eval_acc": 80.0 + r["seed"]} for k, r in runs.items()}
    assert "cannot be told apart from noise" in report.pattern({"runs": flat}, config)
