"""The GPU check driver (python -m sparsespike.bench.gpu_check): its dry run prints and writes the
plan, a part that overruns its budget is stopped and recorded, and (slow) a CPU run of a few parts
writes each part's JSON and the summary."""

import json
import sys

import pytest

from sparsespike.bench import gpu_check

PARTS = [
    "cuda-tests",
    "bench-spike_linear",
    "bench-conv",
    "bench-lif",
    "bench-hgrn",
    "bench-hopfield",
    "bench-models",
    "bandwidth",
    "calibrate",
    "baselines",
]


def test_dry_run_prints_and_writes_every_part_with_its_budget(tmp_path, capsys):
    out = tmp_path / "results"
    assert gpu_check.main(["--dry-run", "--out", str(out), "--wheels", str(tmp_path / "no-wheels")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert [p["name"] for p in summary["parts"]] == PARTS
    assert sum(p["budget_s"] for p in summary["parts"]) == pytest.approx(480)
    for name in PARTS:
        part = json.loads((out / f"{name}.json").read_text())
        assert part["shell"] in printed and f"{name} (budget {part['budget_s']:.0f} s)" in printed
        assert "--device cuda" in part["shell"] or name == "cuda-tests"
        assert part["status"] == (
            "skipped: no wheels in " + str(tmp_path / "no-wheels") if name == "baselines" else "planned"
        )
    tests = summary["parts"][0]
    assert tests["command"][1:] == ["-m", "pytest", "-p", "no:cacheprovider", "-m", "cuda", "-v", "tests"]
    assert tests["env"]["SPARSESPIKE_TEST_REPORT"] == str(out / "cuda-tests.result.json")
    assert summary["parts"][6]["command"][3:5] == ["--suite", "headline"]
    md = (out / "summary.md").read_text()
    assert all(f"| {name} |" in md for name in PARTS)
    assert not list(out.glob("*.out"))  # nothing ran


def test_dry_run_scales_budgets_and_takes_wheels(tmp_path, capsys):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "snntorch-1.0.0-py3-none-any.whl").write_bytes(b"")
    out = tmp_path / "r"
    argv = ["--dry-run", "--out", str(out), "--wheels", str(wheels), "--device", "cpu", "--budget-s", "60"]
    assert gpu_check.main(argv + ["--part", "bench-lif", "--part", "baselines"]) == 0
    parts = json.loads((out / "summary.json").read_text())["parts"]
    assert [p["name"] for p in parts] == ["bench-lif", "baselines"]
    assert [p["budget_s"] for p in parts] == [17.1, 42.9]  # 20 : 50 of 60 s
    assert all(p["status"] == "planned" and "wheels" in p["env"]["PYTHONPATH"] for p in parts)
    assert "--quick" in parts[0]["command"] and "--tiny" in parts[1]["command"]  # cpu: small shapes


def test_a_part_over_its_budget_is_stopped_and_keeps_its_output(tmp_path):
    code = "import time; print('measured so far', flush=True); time.sleep(60)"
    part = gpu_check.Part("slow", "sleeps", 1.0, [sys.executable, "-c", code])
    writes = []
    gpu_check._run_part(part, tmp_path, 1.5, lambda: writes.append(part.status))
    assert part.status == "timeout" and part.wall_s < 15
    assert writes == ["running", "timeout"]
    assert (tmp_path / "slow.out").read_text() == "measured so far\n"


def test_unfinished_test_run_is_counted_from_its_log(tmp_path):
    (tmp_path / "cuda-tests.out").write_text(
        "tests/test_lif.py::test_a[cuda] PASSED [ 1%]\ntests/test_lif.py::test_b[cuda] FAILED [ 2%]\n"
    )
    part = gpu_check.Part("cuda-tests", "", 1.0, [], result=str(tmp_path / "missing.json"))
    details = gpu_check._details(part, tmp_path)
    assert details["counts"] == {"passed": 1, "failed": 1}
    assert details["failed"] == ["tests/test_lif.py::test_b[cuda]"]


@pytest.mark.slow
def test_cpu_run_writes_each_part_and_the_summary(tmp_path):
    out = tmp_path / "results"
    argv = ["--device", "cpu", "--out", str(out), "--wheels", str(tmp_path / "none"), "--budget-s", "240"]
    assert gpu_check.main(argv + ["--part", "cuda-tests", "--part", "bench-hgrn", "--part", "bandwidth"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and [p["status"] for p in summary["parts"]] == ["passed"] * 3
    tests = json.loads((out / "cuda-tests.json").read_text())
    assert tests["details"]["source"] == "report" and "failed" not in tests["details"]["counts"]
    bandwidth = json.loads((out / "bandwidth.result.json").read_text())
    assert all(p["gb_per_s"] > 0 and p["share_of_copy"] > 0 for p in bandwidth["points"])
    assert json.loads((out / "bench-hgrn.result.json").read_text())["suites"]["hgrn"]
    md = (out / "summary.md").read_text()
    assert "## bandwidth: passed" in md and "share of copy" in md
