"""The benchmark CLI runs end to end (on tiny shapes) and writes its table and JSON: by default
the headline alone, with --full every suite and then the headline."""

import json
import re

import pytest

from sparsespike.bench import __main__ as bench_cli
from sparsespike.bench import spike_linear as suite


@pytest.fixture
def tiny_suite(monkeypatch):
    from sparsespike.bench import allocator as allocator_suite
    from sparsespike.bench import batch_sweep as batch_suite
    from sparsespike.bench import conv as conv_suite
    from sparsespike.bench import hgrn as hgrn_suite
    from sparsespike.bench import hopfield as hopfield_suite
    from sparsespike.bench import lif as lif_suite
    from sparsespike.bench import models as models_suite
    from sparsespike.bench import supcon as supcon_suite
    from sparsespike.bench import train_epoch as train_suite

    monkeypatch.setattr(lif_suite, "QUICK_SHAPES", ((6, 2, 16),))
    monkeypatch.setattr(hopfield_suite, "QUICK_QUERIES", 20)
    monkeypatch.setattr(hopfield_suite, "PATTERNS", 8)
    monkeypatch.setattr(hopfield_suite, "DIM", 16)
    monkeypatch.setattr(supcon_suite, "QUICK_BATCHES", (24,))
    monkeypatch.setattr(supcon_suite, "DIM", 8)
    monkeypatch.setattr(hgrn_suite, "QUICK_SHAPES", ((6, 2, 16),))
    monkeypatch.setattr(train_suite, "QUICK_SAMPLES", 16)
    monkeypatch.setattr(train_suite, "BATCH", 8)
    monkeypatch.setattr(train_suite, "MODEL_OPTIONS", {"hidden_sizes": (24, 24), "feature_size": 16})
    audio = {"hidden_sizes": (24, 24), "feature_size": 16}
    monkeypatch.setattr(
        models_suite,
        "QUICK_CASES",
        (
            ("m1", "audio", audio, 2, None),
            ("m1", "visual", {"hidden_sizes": (2, 4), "feature_size": 8}, 2, None),
            ("m2", "audio", audio, 4, (0.05,)),
            ("m4", "audio", audio, 2, (0.05,)),
        ),
    )
    monkeypatch.setattr(batch_suite, "QUICK_BATCHES", (1, 2))
    monkeypatch.setattr(batch_suite, "QUICK_MODEL_OPTIONS", {"hidden_sizes": (24, 24), "feature_size": 16})
    monkeypatch.setattr(conv_suite, "SHAPES", ((2, 5),))
    monkeypatch.setattr(conv_suite, "SIZE", 6)
    monkeypatch.setattr(conv_suite, "IMAGES", 3)
    monkeypatch.setattr(suite, "ROWS", (8,))
    monkeypatch.setattr(suite, "SHAPES", ((40, 24),))
    monkeypatch.setattr(suite, "QUICK_DENSITIES", (0.5, 0.05))
    monkeypatch.setattr(suite, "CALIBRATION_SHAPE", (16, 40, 24))
    monkeypatch.setattr(suite, "CALIBRATION_DENSITIES", (0.5, 0.1))
    monkeypatch.setattr(allocator_suite, "MODEL_OPTIONS", {"hidden_sizes": (24, 24), "feature_size": 16})
    monkeypatch.setattr(allocator_suite, "BATCH", 2)
    monkeypatch.setattr(allocator_suite, "WARMUP", 1)


def _stamped(report):
    """The stamp every bench JSON carries: where (CPU, threads, torch) and from what (commit, date)."""
    machine, run = report["machine"], report["run"]
    assert machine["processor"] and machine["threads"] >= 1 and machine["torch"]
    assert re.fullmatch(r"[0-9a-f]{4,40}(-dirty)?|unknown", run["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["date"])
    assert run["command"].startswith("python -m sparsespike.bench") and run["wall_s"] >= 0


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_full_quick_run_writes_table_and_json(tiny_suite, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPARSESPIKE_DATA", str(tmp_path / "data"))  # the train suite's embedded set
    out = tmp_path / "sub" / "bench.json"
    plots, trace = tmp_path / "plots", tmp_path / "trace" / "step.json"
    assert (
        bench_cli.main(
            [
                "--full",
                "--quick",
                "--repeats",
                "1",
                "--calibrate",
                "--json",
                str(out),
                "--no-progress",
                "--plots",
                str(plots),
                "--profile",
                str(trace),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| rows |" in printed and "sparsespike-cpp ms" in printed and "auto/best" in printed
    assert "SPARSESPIKE_CROSSOVER=" in printed
    report = json.loads(out.read_text())
    points = report["suites"]["spike_linear"]
    assert len(points) == 2 * 2 * 4  # densities x modes x backends
    assert {p["backend"] for p in points} == {"dense", "embedding_bag", "sparsespike-cpp", "sparsespike-auto"}
    assert all(p["median_ms"] > 0 for p in points)
    assert 0.0 <= report["crossover"]["cpu"]["forward_density"] <= 0.5
    assert report["backends"]["cpp"] is True
    lif_points = report["suites"]["lif"]
    assert {p["backend"] for p in lif_points} >= {"reference", "sparsespike-cpp", "sparsespike-auto"}
    forward = [p for p in lif_points if p["mode"] == "forward"]
    assert all(p["gb_per_s"] > 0 and p["share_of_copy"] > 0 for p in forward)
    assert all(p["gb_per_s"] != p["gb_per_s"] for p in lif_points if p["mode"] != "forward")  # NaN
    assert "## lif" in printed
    hopfield_points = report["suites"]["hopfield"]
    assert {p["backend"] for p in hopfield_points} == {"sdpa", "reference", "sparsespike-cpp", "sparsespike-auto"}
    assert {(p["queries"], p["mode"]) for p in hopfield_points} == {
        (q, m) for q in ("float", "spikes 3%") for m in ("forward", "forward+backward")
    }
    assert all(p["median_ms"] > 0 for p in hopfield_points) and "## hopfield" in printed
    supcon_points = report["suites"]["supcon"]
    assert [p["impl"] for p in supcon_points] == ["naive", "chunked"]
    assert all(p["median_ms"] > 0 and p["saved_mib"] > 0 for p in supcon_points)
    assert supcon_points[0]["largest_tensor_mib"] >= 24 * 24 * 4 / 2**20  # naive: the full matrix
    assert "## supcon" in printed and "largest tensor MiB" in printed
    hgrn_points = report["suites"]["hgrn"]
    assert {p["backend"] for p in hgrn_points} == {
        "eager-loop",
        "eager-loop-indexed",
        "reference",
        "sparsespike-cpp",
        "sparsespike-auto",
    }
    assert all(p["median_ms"] > 0 for p in hgrn_points) and "## hgrn" in printed
    conv_points = report["suites"]["conv"]
    assert {p["backend"] for p in conv_points} == {"torch", "sparsespike-cpp", "sparsespike-auto"}
    assert {(p["density"], p["mode"]) for p in conv_points} == {
        (d, m) for d in (0.1, 0.03) for m in ("forward", "forward+backward")
    }
    assert all(p["median_ms"] > 0 and p["ratio_to_torch"] > 0 for p in conv_points)
    assert "## conv" in printed and "2->5 6x6 N=3" in printed and "sparsespike-cpp x" in printed
    train_points = report["suites"]["train"]
    assert [(p["model"], p["backend"]) for p in train_points] == [("m4", "auto"), ("m4", "reference")]
    assert all(p["samples"] == 16 and p["epoch_s"] > 0 for p in train_points)
    assert train_points[1]["speedup_vs_reference"] == 1.0 and "## train" in printed
    model_points = report["suites"]["models"]
    cases = (("m1", "audio"), ("m1", "visual"), ("m2", "audio"), ("m4", "audio"))
    expected = {
        (m, mod, mode, b, "exact")
        for m, mod in cases
        for mode in ("inference", "train")
        for b in ("auto", "reference", "eager")
    }
    # the train step's surrogate axis: the fused backend with each compact-support surrogate
    expected |= {(m, mod, "train", "auto", s) for m, mod in cases for s in ("band 0.05", "band 0.2", "triangle")}
    assert {(p["model"], p["modality"], p["mode"], p["backend"], p["surrogate"]) for p in model_points} == expected
    for p in model_points:
        if p["surrogate"] == "exact":
            assert p["band_active"] == {}
        else:  # every LIF with compact support reports its band: a grad_band truncates the hidden two
            assert len(p["band_active"]) == (4 if p["surrogate"] == "triangle" else 2), p
            assert all(0 <= f <= 1 for f in p["band_active"].values()), p
    assert re.search(r"\|\s+triangle \|", printed)
    assert all(p["ms"] > 0 and p["peak_mb"] > 0 and p["synops_per_sample"] > 0 for p in model_points)
    assert all(p["speedup_vs_eager"] == 1.0 for p in model_points if p["backend"] == "eager")
    assert all(p["speedup_vs_eager"] > 0 for p in model_points)
    assert "per-layer forward time, m1 audio" in printed and "## models" in printed
    for case in ("m1-audio", "m1-visual"):
        for kind in ("throughput", "layers"):
            assert (plots / f"{case}-{kind}.png").read_bytes().startswith(b"\x89PNG")
    assert "traceEvents" in json.loads(trace.read_text()) and "## profile" in printed
    batch_points = report["suites"]["batch"]
    assert {(p["mode"], p["batch"]) for p in batch_points} == {("sequence", 1), ("sequence", 2), ("streaming", 1)}
    assert all(p["auto_vs_best"] >= 1.0 for p in batch_points) and "## batch" in printed
    allocator_points = report["suites"]["allocator"]
    assert [p["malloc"] for p in allocator_points] == ["reuse", "system"]
    # --repeats 1: one measured forward each
    assert all(len(p["faults"]) == 1 and min(p["faults"]) >= 0 and p["median_ms"] > 0 for p in allocator_points)
    assert allocator_points[1]["mode"] == "system" and "## allocator" in printed
    # the quick sweep has no 3% models rows, so the headline is measured after the suites, printed last
    assert {(p["modality"], p["target_density"]) for p in report["suites"]["headline"]} == {
        ("audio", 0.03),
        ("visual", 0.03),
    }
    assert printed.index("## headline") > printed.index("## profile") > printed.index("## batch")
    assert printed.rstrip().endswith(f"wrote {out}")
    _stamped(report)
    assert report["run"]["command"].startswith("python -m sparsespike.bench --full --quick")


def test_default_run_is_the_headline_and_writes_json_under_runs(tiny_suite, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bench_cli.main(["--quick", "--repeats", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert re.findall(r"^## .*", printed, re.M) == ["## headline (median ms)"]  # one table
    written = re.fullmatch(r"(?s).*\nwrote (runs/bench/\d{8}-\d{6}\.json)\n", printed)
    assert written, printed[-200:]
    report = json.loads((tmp_path / written.group(1)).read_text())
    assert list(report["suites"]) == ["headline"]
    points = report["suites"]["headline"]
    assert {(p["model"], p["modality"], p["mode"], p["backend"], p["surrogate"]) for p in points} == {
        ("m1", modality, mode, backend, "exact")
        for modality in ("audio", "visual")
        for mode in ("inference", "train")
        for backend in ("auto", "reference", "eager")
    } | {
        ("m1", modality, "train", "auto", surrogate)
        for modality in ("audio", "visual")
        for surrogate in ("band 0.05", "band 0.2", "triangle")
    }
    assert all(p["target_density"] == 0.03 and p["synops_per_sample"] > 0 and p["peak_mb"] > 0 for p in points)
    for label in ("fused (auto)", "reference", "eager (step-by-step)", "SynOps/sample", "peak MB", "x eager"):
        assert label in printed
    # 3 backends x 2 modes, and the train step's 3 compact-support surrogates
    assert len(re.findall(r"^\|\s+audio \|", printed, re.M)) == len(re.findall(r"^\|\s+visual \|", printed, re.M)) == 9
    _stamped(report)


def test_full_run_takes_the_headline_from_its_models_suite():
    from sparsespike.bench import headline
    from sparsespike.bench.models import Point

    def point(modality, batch, density, backend="auto", model="m1"):
        return Point(model, modality, "train", density, backend, batch, 1.0, 1.0, 0.03, 1.0, 1.0)

    swept = [point(m, b, d) for m, b in (("audio", 32), ("visual", 8)) for d in (0.05, 0.03, 0.015)]
    swept += [point("audio", 32, 0.03, model="m2")]
    chosen = headline.select(swept)
    assert [(p.model, p.modality, p.target_density) for p in chosen] == [("m1", "audio", 0.03), ("m1", "visual", 0.03)]
    assert headline.select(swept[:3]) is None  # no visual rows: measured instead
    assert headline.select(swept, modalities=["visual"]) == [chosen[1]]
    assert headline.cases(models=["m4"]) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--full", "--suite", "lif"], "--full runs every suite: give it or --suite lif, not both"),
        (["--model", "m4"], "--model m4: the headline is M1"),
    ],
)
def test_selection_mistakes(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bench_cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_models_suite_filters(tiny_suite, tmp_path, capsys):
    from sparsespike.bench import __main__ as bench_cli

    out = tmp_path / "m4.json"
    assert (
        bench_cli.main(
            [
                "--quick",
                "--repeats",
                "1",
                "--suite",
                "models",
                "--model",
                "m4",
                "--modality",
                "audio",
                "--json",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    points = json.loads(out.read_text())["suites"]["models"]
    assert {(p["model"], p["modality"]) for p in points} == {("m4", "audio")} and len(
        points
    ) == 9  # 3 backends x 2 modes, 3 surrogates (train)
    # no quick case is M3: nothing to run is an error, not an empty table
    assert bench_cli.main(["--quick", "--suite", "models", "--model", "m3", "--no-progress"]) == 2
    assert "no models case matches" in capsys.readouterr().err


def test_crossing_interpolation():
    assert suite._crossing((0.5, 0.1), (2.0, 3.0)) == 0.5  # faster everywhere
    assert suite._crossing((0.5, 0.1), (0.5, 0.8)) == 0.0  # slower everywhere
    crossing = suite._crossing((0.4, 0.1), (0.5, 2.0))  # log-log midpoint where speedup == 1
    assert crossing == pytest.approx(0.2, rel=1e-6)


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    assert bench_cli.main(["--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--device", "gpu"], "--device gpu: must be cpu, cuda or cuda:N"),
        (["--device", "meta"], "--device meta: must be cpu, cuda or cuda:N"),
        (["--threads", "0"], "argument --threads: must be a finite integer >= 1, got 0"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    try:
        status = bench_cli.main(argv)
    except SystemExit as exit_:  # argparse's own checks
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_accuracy_suite_trains_each_surrogate(tmp_path, capsys, monkeypatch):
    from sparsespike.bench import accuracy

    monkeypatch.setenv("SPARSESPIKE_DATA", str(tmp_path / "data"))
    out = tmp_path / "accuracy.json"
    assert bench_cli.main(["--suite", "accuracy", "--quick", "--json", str(out), "--no-progress"]) == 0
    points = json.loads(out.read_text())["suites"]["accuracy"]
    assert [p["surrogate"] for p in points] == [label for label, _ in accuracy.SURROGATES]
    assert all(0 <= p["best_eval_acc"] <= 100 and p["step_ms"] > 0 and p["train_samples"] > 0 for p in points)
    assert [len(p["band_active"]) for p in points] == [0, 2, 2, 4]  # a grad_band truncates hidden LIFs only
    printed = capsys.readouterr().out
    assert "## accuracy" in printed and re.search(r"\|\s+band 0.05 \|", printed) and "vs exact (points)" in printed


@pytest.mark.slow  # end to end: a whole (quick) training run
def test_recipe_suite_trains_each_trial(tmp_path, capsys, monkeypatch):
    from sparsespike.bench import recipe

    monkeypatch.setenv("SPARSESPIKE_DATA", str(tmp_path / "data"))
    out = tmp_path / "recipe.json"
    assert bench_cli.main(["--suite", "recipe", "--quick", "--json", str(out), "--no-progress"]) == 0
    points = json.loads(out.read_text())["suites"]["recipe"]
    assert [p["trial"] for p in points] == [recipe._label(t[2]) for t in recipe.QUICK_TRIALS] == ["lr 0.003"]
    (p,) = points
    assert 0 <= p["best_eval_acc"] <= 100 and len(p["eval_curve"]) == p["epochs"] == 1 and p["seconds"] > 0
    assert set(p["hidden_rates"]) == {"encoder.lif_input", "encoder.lif1", "encoder.lif_hidden"}
    printed = capsys.readouterr().out
    assert "## recipe" in printed and "hidden rate % (highest layer)" in printed
    # every full trial is a valid training config (checked without training)
    from sparsespike.training import TrainConfig

    for model, base, overrides in recipe.TRIALS:
        TrainConfig(model=model, **{**base, **overrides})


@pytest.mark.slow  # end to end: a whole (quick) training run
def test_readout_suite_trains_the_joint_model_and_gives_each_modality(tmp_path, capsys, monkeypatch):
    from sparsespike.bench import readout
    from sparsespike.study.plan import STUDY_ACTIVITY_WEIGHT, STUDY_LR
    from sparsespike.training import TrainConfig

    monkeypatch.setenv("SPARSESPIKE_DATA", str(tmp_path / "data"))
    out = tmp_path / "readout.json"
    assert bench_cli.main(["--suite", "readout", "--quick", "--json", str(out), "--no-progress"]) == 0
    (p,) = json.loads(out.read_text())["suites"]["readout"]
    assert (p["model"], p["trial"], p["epochs"]) == ("joint", "readout membrane", 1)
    assert set(p["best_eval_by_modality"]) == {"visual", "audio"}
    assert all(0 <= a <= 100 for a in p["best_eval_by_modality"].values())
    printed = capsys.readouterr().out
    assert "## readout" in printed and "by modality %" in printed
    # every full trial is a valid training config with the study's recipe, both readouts, both memories
    configs = [TrainConfig(model=m, **{**base, **overrides}) for m, base, overrides in readout.TRIALS]
    assert {(c.lr, c.activity_weight) for c in configs} == {(STUDY_LR, STUDY_ACTIVITY_WEIGHT)}
    assert {(c.model, c.readout) for c in configs if c.memory == "sequence"} == {
        (m, r) for m in ("m1", "m2", "m3", "m4", "m5", "joint") for r in ("count", "membrane")
    }
    assert {c.model for c in configs if c.memory == "study"} == {"m3", "m4", "m5"}
