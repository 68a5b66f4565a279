"""The training loop and CLI: metrics, checkpoints, exact resumption, early stopping, DDP."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from sparsespike import train as train_cli
from sparsespike.training import TrainConfig, fit, load_checkpoint, load_trained
from sparsespike.training import loop as loop_module

SMALL_AUDIO = {"hidden_sizes": (48, 48), "feature_size": 32}


def small_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        model="m1",
        dataset="randman",
        epochs=2,
        batch_size=16,
        limit_train=64,
        limit_eval=32,
        out=str(tmp_path / "run"),
        progress=False,
        model_options=dict(SMALL_AUDIO),
        cache_dir=str(tmp_path / "cache"),
    )
    values.update(overrides)
    return TrainConfig(**values)


def tiny_cli_args(tmp_path, out) -> list[str]:
    """The training CLI's flags for one epoch of 16 randman samples into ``out``."""
    limits = ["--epochs", "1", "--batch-size", "8", "--limit-train", "16", "--limit-eval", "8"]
    return ["--dataset", "randman", *limits, "--out", str(out), "--no-progress", "--cache-dir", str(tmp_path / "cache")]


def _metrics(path):
    return [json.loads(line) for line in open(path)]


def _timeless(row):
    return {k: v for k, v in row.items() if "second" not in k}


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="model"):
        TrainConfig(model="m9")
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="<visual>\\+<audio>"):
        TrainConfig(model="joint", dataset="randman")
    with pytest.raises(ValueError, match="one dataset"):
        TrainConfig(model="m1", dataset="saccade-digits+randman")
    with pytest.raises(ValueError, match="memory must be one of"):
        TrainConfig(memory="gru")
    with pytest.raises(ValueError, match=r"memory must be one of \('sequence',\) for m1"):
        TrainConfig(model="m1", memory="study")  # M1 has no memory
    with pytest.raises(ValueError, match="hgrn must be one of"):
        TrainConfig(hgrn="gru")  # the deprecated name's values are checked too
    with pytest.raises(ValueError, match="calibrate_modalities"):
        TrainConfig(calibrate_modalities=("video",))


@pytest.mark.parametrize(
    "model, old, memory",
    [
        ("m4", {"hgrn": "study"}, "study"),
        ("m5", {"hgrn": "qin"}, "sequence"),
        ("joint", {"hgrn": "study"}, "study"),
        ("m3", {"hopfield": "study"}, "study"),
        ("m3", {"hgrn": "study"}, "sequence"),  # m3 took hopfield=, never hgrn=: ignored, as before
        ("m1", {"hgrn": "study", "hopfield": "study"}, "sequence"),  # m1 took neither
    ],
)
def test_hgrn_and_hopfield_are_deprecated_names_of_memory(model, old, memory):
    dataset = "saccade-digits+randman" if model == "joint" else "randman"
    with pytest.warns(DeprecationWarning, match=r"TrainConfig\(.*\) is deprecated: use memory=") as caught:
        config = TrainConfig(model=model, dataset=dataset, **old)
    assert caught[0].filename == __file__  # attributed to the caller's line
    assert config.memory == memory and "hgrn" not in config.to_dict() and "hopfield" not in config.to_dict()
    # a checkpoint's config saved before memory= existed: the value the model took, without a warning
    saved = {**TrainConfig(model=model, dataset=dataset).to_dict(), "hgrn": "qin", "hopfield": "sequence", **old}
    del saved["memory"]
    assert TrainConfig.from_dict(saved).memory == memory
    with pytest.raises(TypeError, match="pass memory= only"), pytest.deprecated_call():
        TrainConfig(model="m4", memory="study", hgrn="qin")


def test_the_cli_takes_memory_and_its_deprecated_flags(capsys):
    assert train_cli.config_from_args(["--model", "m4"]).memory == "sequence"
    assert train_cli.config_from_args(["--model", "m4", "--memory", "study"]).memory == "study"
    assert capsys.readouterr().err == ""
    assert train_cli.config_from_args(["--model", "m4", "--hgrn", "study"]).memory == "study"
    err = capsys.readouterr().err
    assert "warning: --hgrn study: deprecated, use --memory (--memory study for m4)" in err
    assert train_cli.config_from_args(["--model", "m3", "--hopfield", "study"]).memory == "study"
    assert "--hopfield study: deprecated, use --memory" in capsys.readouterr().err
    assert train_cli.config_from_args(["--model", "m3", "--hgrn", "study"]).memory == "sequence"  # as before
    assert "ignored for m3, as before" in capsys.readouterr().err
    assert train_cli.main(["--model", "m4", "--memory", "study", "--hgrn", "study"]) == 2
    assert "pass --memory only" in capsys.readouterr().err
    assert train_cli.main(["--model", "m1", "--memory", "study"]) == 2
    assert "for m1" in capsys.readouterr().err


def test_fit_writes_metrics_and_checkpoints(tmp_path):
    config = small_config(tmp_path, model="m2")
    summary = fit(config)
    out = tmp_path / "run"
    rows = _metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and summary["epochs"] == 2
    for key in (
        "train_loss",
        "train_ce",
        "train_scl",
        "train_acc",
        "eval_acc",
        "lr",
        "train_samples_per_second",
        "train_data_wait_seconds",
        "train_hidden_density",
    ):
        assert key in rows[0]
    assert rows[0]["train_samples"] == 64 and rows[0]["eval_samples"] == 32
    assert rows[0]["train_scl"] > 0  # m2 adds the supervised contrastive term (weight 0.1)
    assert rows[1]["lr"] < rows[0]["lr"]  # cosine schedule
    best = load_checkpoint(out / "best.pt")
    assert best["eval_acc"] == max(r["eval_acc"] for r in rows) == summary["best_eval_acc"]
    model, saved_config = load_trained(out / "best.pt")
    assert saved_config.model == "m2" and not model.training
    # the run folder is never overwritten without --resume
    with pytest.raises(FileExistsError, match="--resume"):
        fit(config)


def test_resume_continues_exactly(tmp_path, monkeypatch):
    straight = fit(small_config(tmp_path / "a", epochs=3))
    # a second run is interrupted during its second epoch, then resumed
    real_run_epoch, calls = loop_module.run_epoch, {"n": 0}

    def interrupted(*args, **kwargs):
        if kwargs.get("desc", "").startswith("epoch 2/3 train"):
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(loop_module, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(small_config(tmp_path / "b", epochs=3))
    monkeypatch.setattr(loop_module, "run_epoch", real_run_epoch)
    assert len(_metrics(tmp_path / "b" / "run" / "metrics.jsonl")) == 1
    partial = tmp_path / "b" / "run" / ".last.pt.a1b2c3d4.tmp"  # as a kill mid-write leaves it
    partial.write_bytes(b"cut short")
    resumed = fit(small_config(tmp_path / "b", epochs=3, resume=True))
    a = load_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [_timeless(r) for r in straight["history"]] == [_timeless(r) for r in resumed["history"]]
    assert len(_metrics(tmp_path / "b" / "run" / "metrics.jsonl")) == 3
    assert not partial.exists()
    with pytest.raises(ValueError, match="lr: checkpoint 0.0003 vs now 0.01"):
        fit(small_config(tmp_path / "b", epochs=3, resume=True, lr=1e-2))


def test_early_stopping(tmp_path):
    # lr so small nothing changes: the evaluation accuracy never improves after epoch 1
    summary = fit(small_config(tmp_path, epochs=10, patience=2, lr=1e-12, min_lr=0.0))
    assert summary["stopped_early"] and summary["epochs"] == 3 and summary["best_epoch"] == 1


def test_cli_runs_and_reports_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--model", "m4", *tiny_cli_args(tmp_path, out)]
    assert train_cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs"] == 1 and os.path.exists(out / "last.pt")
    assert train_cli.main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_cli.main(["--model", "m1", "--dataset", "no-such-set", "--out", str(tmp_path / "x")]) == 2
    assert "no-such-set" in capsys.readouterr().err
    assert (
        train_cli.main(
            [
                "--model",
                "m1",
                "--dataset",
                "randman",
                "--out",
                str(tmp_path / "y"),
                "--device",
                "gpu0",
                "--cache-dir",
                str(tmp_path / "cache"),
            ]
        )
        == 2
    )
    assert "device" in capsys.readouterr().err
    assert train_cli.config_from_args(["--calibrate", "visual, audio"]).calibrate_modalities == ("visual", "audio")
    assert train_cli.config_from_args([]).calibrate_modalities == ("audio",)
    assert train_cli.main(["--calibrate", "video", "--out", str(tmp_path / "z")]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_two_processes_stay_in_sync(tmp_path):
    # torchrun launches two CPU processes (gloo); each trains through DDP and saves its replica.
    script = tmp_path / "ddp_run.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, torch
        from sparsespike.training import TrainConfig, fit
        torch.set_num_threads(1)
        config = TrainConfig(model="m2", dataset="randman", epochs=2, batch_size=8, limit_train=64,
                             limit_eval=32, out={str(tmp_path / "run")!r}, progress=False,
                             cache_dir={str(tmp_path / "cache")!r}, model_options={SMALL_AUDIO!r})
        summary = fit(config)
        torch.save(summary["model"].state_dict(), os.path.join({str(tmp_path)!r}, f"rank{{os.environ['RANK']}}.pt"))
    """)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    config = small_config(tmp_path, model="m2")
    torch.manual_seed(config.seed)  # fit seeds the same way before building the model
    initial = loop_module.build(config, loop_module.load_splits(config)).state_dict()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"replicas differ in {name}"
    assert any(not torch.equal(rank0[n], initial[n]) for n in rank0)  # it trained
    rows = _metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["replicas_in_sync"] for r in rows] == [2, 2]
    # each process trained on half of every epoch's 64 samples, evaluated on half of 32
    assert rows[0]["train_samples"] == 64 and rows[0]["eval_samples"] == 32


@pytest.mark.slow  # end to end: whole runs or subprocesses
def test_joint_model_alternates_modalities(tmp_path, capsys):
    # small encoders: the visual one at the study's 34 x 34 input with 4 / 8 channels
    options = {"visual_hidden_sizes": (4, 8), "audio_hidden_sizes": (32, 32), "feature_size": 32}
    summary = fit(
        small_config(
            tmp_path,
            model="joint",
            dataset="saccade-digits+randman",
            epochs=1,
            batch_size=8,
            limit_train=24,
            limit_eval=16,
            model_options=options,
            calibrate_modalities=["audio"],
        )
    )
    calibrated = [line for line in capsys.readouterr().out.splitlines() if line.startswith("calibrated firing")]
    # only the audio encoder (and the shared head, which the audio forward runs) was scaled
    assert len(calibrated) == 1 and "encoders.audio." in calibrated[0] and "visual" not in calibrated[0]
    row = summary["history"][0]
    assert row["train_visual_samples"] == 24 and row["train_audio_samples"] == 24
    assert row["eval_visual_samples"] == 16 and row["eval_audio_samples"] == 16
    assert row["eval_acc"] == pytest.approx((row["eval_visual_acc"] + row["eval_audio_acc"]) / 2)
    with pytest.raises(ValueError, match="visual then an audio"):
        fit(small_config(tmp_path / "swap", model="joint", dataset="randman+saccade-digits", model_options=options))


def test_a_multimodal_model_needs_its_modalities_in_order_and_one_label_space():
    config = TrainConfig(model="joint", dataset="saccade-digits+randman")
    split = loop_module.Split
    loop_module._check_modalities(config, [split("visual", None, None, 10), split("audio", None, None, 10)])
    with pytest.raises(ValueError, match="needs a visual then an audio dataset"):
        loop_module._check_modalities(config, [split("audio", None, None, 10), split("visual", None, None, 10)])
    with pytest.raises(ValueError, match=r"share one label space, got classes \{'saccade-digits': 10, 'randman': 35\}"):
        loop_module._check_modalities(config, [split("visual", None, None, 10), split("audio", None, None, 35)])
    # a model built for one modality takes any one
    loop_module._check_modalities(TrainConfig(model="m4"), [split("audio", None, None, 35)])


def test_interleave_alternates_then_finishes_the_longer():
    order = [m for m, _ in loop_module._interleave([("visual", [1, 2, 3]), ("audio", [4])])]
    assert order == ["visual", "audio", "visual", "visual"]


def test_a_batch_larger_than_the_training_set_is_refused_before_training(tmp_path):
    # it used to run zero steps an epoch, log "train loss 0.0000 ... 0 samples/s" and write best.pt
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) 32 .* training set of randman \(16 samples\)"):
        fit(small_config(tmp_path, limit_train=16, batch_size=32))
    assert not (tmp_path / "run" / "best.pt").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", 0.0),
        ("weight_decay", float("nan")),
        ("weight_decay", float("inf")),
        ("grad_clip", float("nan")),
        ("grad_clip", -1.0),
        ("min_lr", float("nan")),
        ("scl_weight", float("nan")),
        ("scl_weight", float("inf")),
        ("scl_temperature", float("nan")),
        ("scl_temperature", 0.0),
        ("epochs", 0),
        ("batch_size", 0),
        ("patience", 0),
        ("workers", -1),
        ("limit_train", 0),
        ("limit_eval", 0),
        ("calibration_samples", 0),
        ("grad_band", 0.0),
        ("grad_band", float("nan")),
        ("surrogate_param", -1.0),
        ("surrogate", "relu"),
    ],
)
def test_config_values_must_be_finite_and_in_range(field, value):
    # NaN compares false, so "grad_clip < 0" let NaN through (and clipping silently off)
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field, value", [("epochs", 2.5), ("batch_size", "32"), ("lr", "0.1"), ("seed", None)])
def test_config_values_must_have_the_right_type(field, value):
    with pytest.raises(TypeError, match=field):
        TrainConfig(**{field: value})


def test_a_non_finite_loss_stops_training_at_that_step(tmp_path, monkeypatch):
    real_loss, calls = loop_module._loss, {"n": 0}

    def loss_goes_nan_at_step_3(output, labels, scl_weight, temperature):
        loss, ce, scl = real_loss(output, labels, scl_weight, temperature)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), ce, scl

    monkeypatch.setattr(loop_module, "_loss", loss_goes_nan_at_step_3)
    with pytest.raises(loop_module.TrainingDiverged, match=r"loss became non-finite .* epoch 1 step 3; .*--lr"):
        fit(small_config(tmp_path, batch_size=8))
    assert not (tmp_path / "run" / "best.pt").exists()


def test_non_finite_weights_stop_training_after_that_step(tmp_path, monkeypatch):
    # A NaN in the weight row of an input that never fires does not reach the loss (event-driven
    # ops skip silent inputs): only a check of the weights themselves sees it.
    real_adamw = loop_module.adamw

    def poisoned_adamw(params, **kwargs):
        params = list(params)
        optimizer = real_adamw(params, **kwargs)
        steps = {"n": 0}

        def poison(opt, args, kwargs):
            steps["n"] += 1
            if steps["n"] == 2:
                with torch.no_grad():
                    params[0][0, 0] = float("nan")

        optimizer.register_step_post_hook(poison)
        return optimizer

    monkeypatch.setattr(loop_module, "adamw", poisoned_adamw)
    with pytest.raises(loop_module.TrainingDiverged, match=r"weights of \S+ became non-finite .* epoch 1 step 2"):
        fit(small_config(tmp_path, batch_size=8))


def test_the_cli_reports_divergence_in_one_line_with_status_1(tmp_path, monkeypatch, capsys):
    def always_nan(output, labels, scl_weight, temperature):
        loss = F.cross_entropy(output.logits, labels) * float("nan")
        return loss, loss, torch.zeros(())

    monkeypatch.setattr(loop_module, "_loss", always_nan)
    args = tiny_cli_args(tmp_path, tmp_path / "run")
    assert train_cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epoch 1 step 1" in err and "Traceback" not in err


def test_a_bug_during_training_keeps_its_traceback(tmp_path, monkeypatch):
    # after set-up a ValueError is not the user's mistake: the CLI must not turn it into one line
    def broken(*args, **kwargs):
        raise ValueError("a bug in the loop")

    monkeypatch.setattr(loop_module, "run_epoch", broken)
    args = tiny_cli_args(tmp_path, tmp_path / "run")
    with pytest.raises(ValueError, match="a bug in the loop"):
        train_cli.main(args)


# ----------------------------------------------------------------------------- band-limited surrogates


def test_band_limited_training_logs_band_fractions_and_warns_once_on_starvation(tmp_path, capsys):
    """--grad-band reaches every LIF; each epoch's metrics hold the mean band-active fraction per
    layer, and a band that is nearly empty warns once per layer (not once per step)."""
    with pytest.warns(RuntimeWarning, match="gradient starvation") as caught:
        summary = fit(small_config(tmp_path, grad_band=1e-3, epochs=2))
    starved = {str(w.message).split("of ")[1].split("'s")[0] for w in caught if "starvation" in str(w.message)}
    assert len([w for w in caught if "starvation" in str(w.message)]) == len(starved)  # once per layer
    rows = _metrics(tmp_path / "run" / "metrics.jsonl")
    bands = rows[0]["train_band_active"]
    assert set(bands) == {"encoder.lif_input", "encoder.lif1"}  # the hidden LIFs: the ones truncated
    assert all(0 <= f < 1 for f in bands.values()) and starved <= set(bands)
    assert "band active: encoder.lif_input" in capsys.readouterr().out
    truncated = {n: m.grad_band for n, m in summary["model"].named_modules() if getattr(m, "grad_band", None)}
    assert truncated == {"encoder.lif_input": 1e-3, "encoder.lif1": 1e-3}
    assert "eval_band_active" not in rows[0]  # evaluation records no graph, so no band


def test_exact_training_logs_no_band(tmp_path):
    fit(small_config(tmp_path, epochs=1))
    assert "train_band_active" not in _metrics(tmp_path / "run" / "metrics.jsonl")[0]


def test_band_monitor_means_and_starvation():
    from sparsespike.nn import LIF
    from sparsespike.training.bands import BandMonitor, band_summary

    model = torch.nn.Sequential(LIF(grad_band=0.5), LIF(), LIF(surrogate="triangle"))
    monitor = BandMonitor(model)
    assert [name for name, _ in monitor.layers] == ["0", "2"]  # the exact one has no band
    x = torch.randn(5, 3, 8, requires_grad=True)
    fractions = []
    for step in range(2):
        _, band0 = model[0].fire(x * (step + 1))
        _, band2 = model[2].fire(x + 1.5)
        fractions.append((band0.float().mean().item(), band2.float().mean().item()))
        monitor.add(step)
    means = monitor.means()
    assert means["0"] == pytest.approx((fractions[0][0] + fractions[1][0]) / 2)
    assert means["2"] == pytest.approx((fractions[0][1] + fractions[1][1]) / 2)
    assert not monitor.warned
    # every membrane at 0, far below the band around the threshold 1: starved, warned once
    with pytest.warns(RuntimeWarning, match="only 0.00% of 0's neuron-steps") as caught:
        for step in range(0, 30, 10):
            model[0].fire(x * 0.0)
            monitor.add(step)
    assert len(caught) == 1 and monitor.warned == {"0"}
    assert band_summary({"a": 0.105, "b": 0.004}) == "a 10.5%, b 0.4%"
    assert band_summary({"a": 0.105, "b": 0.004}, short=True) == "10.5/0.4%"


def test_the_cli_takes_the_surrogate_and_band():
    config = train_cli.config_from_args(["--surrogate", "triangle", "--surrogate-param", "2", "--grad-band", "0.3"])
    assert (config.surrogate, config.surrogate_param, config.grad_band) == ("triangle", 2.0, 0.3)
    default = train_cli.config_from_args([])
    assert (default.surrogate, default.surrogate_param, default.grad_band) == ("fast_sigmoid", None, None)
    with pytest.raises(SystemExit):
        train_cli.config_from_args(["--grad-band", "-1"])


def test_the_cli_takes_the_activity_regulariser_and_readout():
    config = train_cli.config_from_args(
        ["--activity-weight", "50", "--activity-target", "0.02", "--readout", "membrane"]
    )
    assert (config.activity_weight, config.activity_target, config.readout) == (50.0, 0.02, "membrane")
    default = train_cli.config_from_args([])
    assert (default.activity_weight, default.activity_target, default.readout) == (0.0, 0.03, "count")
    for bad in (["--activity-weight", "-1"], ["--activity-target", "0"], ["--readout", "max"]):
        with pytest.raises(SystemExit):
            train_cli.config_from_args(bad)


# ----------------------------------------------------------------------------- activity regulariser


def test_activity_penalty_is_the_squared_excess_over_the_target_of_the_hidden_layers():
    from sparsespike.models import build_model
    from sparsespike.training.activity import ActivityPenalty, hidden_lifs

    model = build_model("m1", "audio", hidden_sizes=(24, 24), feature_size=16)
    assert [n for n, _ in hidden_lifs(model)] == ["encoder.lif_input", "encoder.lif1", "encoder.lif_hidden"]
    joint = build_model("joint", None, visual_hidden_sizes=(2, 4), audio_hidden_sizes=(24, 24), feature_size=16)
    assert hidden_lifs(joint) and all("head" not in n for n, _ in hidden_lifs(joint))
    x = (torch.rand(3, 20, 700, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    rates = {}
    handles = [
        m.register_forward_hook(lambda m, a, o, n=n: rates.__setitem__(n, o.mean())) for n, m in hidden_lifs(model)
    ]
    with ActivityPenalty(model, target=0.01, weight=7.0) as activity:
        model(x)
        penalty = activity.penalty()
        want = 7.0 * sum(torch.clamp(r - 0.01, min=0) ** 2 for r in rates.values())
        torch.testing.assert_close(penalty, want)
        assert activity.penalty() is None  # each forward's rates are used once
        assert float(want.detach()) > 0  # this input drives some layer above 1%
        (grad,) = torch.autograd.grad(penalty, model.encoder.fc1.weight)  # through the spikes' surrogate
        assert bool(grad.abs().sum() > 0)
        with torch.no_grad():
            model(x)
        assert activity.penalty() is None  # no graph, nothing recorded
        model(x)
        activity.penalty()
        assert set(activity.epoch_rates()) == set(rates)  # means over the penalised steps
    for h in handles:
        h.remove()
    assert all(not m._forward_hooks for _, m in hidden_lifs(model))  # closed: hooks removed
    # at or below the target: no penalty
    with ActivityPenalty(model, target=0.99, weight=7.0) as activity:
        model(x)
        assert float(activity.penalty().detach()) == 0.0


def test_training_with_the_activity_regulariser_logs_hidden_rates(tmp_path, capsys):
    summary = fit(small_config(tmp_path, epochs=1, activity_weight=5.0, activity_target=0.02))
    row = _metrics(tmp_path / "run" / "metrics.jsonl")[0]
    assert set(row["train_hidden_rates"]) == {"encoder.lif_input", "encoder.lif1", "encoder.lif_hidden"}
    assert all(0 <= r <= 1 for r in row["train_hidden_rates"].values())
    assert row["train_activity_penalty"] >= 0 and row["eval_activity_penalty"] == 0
    assert "hidden rates: lif_input" in capsys.readouterr().out
    assert all(not m._forward_hooks for m in summary["model"].modules())  # fit removed its hooks
    fit(small_config(tmp_path, epochs=1, out=str(tmp_path / "off")))
    off = _metrics(tmp_path / "off" / "metrics.jsonl")[0]  # weight 0: rates logged, no penalty
    assert set(off["train_hidden_rates"]) == set(row["train_hidden_rates"]) and off["train_activity_penalty"] == 0


def test_activity_rates_average_over_the_steps_each_layer_ran_in():
    # the joint model runs one encoder per batch: a layer's epoch mean counts only its own steps
    from sparsespike.models import build_model
    from sparsespike.training.activity import ActivityPenalty

    model = build_model("joint", None, visual_hidden_sizes=(2, 4), audio_hidden_sizes=(24, 24), feature_size=16)
    g = torch.Generator().manual_seed(1)
    batches = {
        "visual": (torch.rand(2, 5, 2, 34, 34, generator=g) < 0.2).float(),
        "audio": (torch.rand(2, 5, 700, generator=g) < 0.2).float(),
    }
    seen = {}
    with ActivityPenalty(model, target=0.03, weight=0.0) as activity:
        for modality, x in batches.items():
            model(x, modality)
            assert activity.penalty() is None  # weight 0: recorded, not penalised
            seen.update({n: float(r) for n, r in activity._sums.items() if n not in seen})
        rates = activity.epoch_rates()
    assert any("visual" in n for n in rates) and any("audio" in n for n in rates)
    assert rates == pytest.approx(seen)  # one step each: the mean is that step's rate, not half of it


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(activity_target=1.0), "activity_target is a fraction"),
        (dict(activity_target=0.0), "activity_target"),
        (dict(activity_weight=-1.0), "activity_weight"),
        (dict(activity_weight=float("nan")), "activity_weight"),
    ],
)
def test_activity_settings_are_checked(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        small_config(tmp_path, **overrides)
