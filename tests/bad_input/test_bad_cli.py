"""Bad command lines, one row each: every CLI (train, study, energy, bench, bench.report) answers a
user's mistake with one line naming the flag and exit status 2, before any work, and never a
traceback.

Rows: (case id, cli, argv, expected status, fragment of the error line). In argv, {file} is an
existing file, {dir} an existing folder, {ro} a folder nobody may write in, {data} the data folder.
Each CLI's main(argv) runs in-process (argparse's own errors raise SystemExit(2)).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from sparsespike import train
from sparsespike.bench import __main__ as bench
from sparsespike.bench import report as bench_report
from sparsespike.energy import __main__ as energy
from sparsespike.study import __main__ as study

CLIS = {"train": train, "study": study, "energy": energy, "bench": bench, "bench.report": bench_report}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

ROWS = [
    # --- python -m sparsespike.train
    ("train-out-is-a-file", "train", ["--out", "{file}"], 2, "--out {file}: is a file, not a folder"),
    ("train-out-below-a-file", "train", ["--out", "{file}/run"], 2, "{file} is a file, not a folder"),
    ("train-out-unwritable", "train", ["--out", "{ro}/run"], 2, "--out {ro}/run: cannot write in {ro}"),
    (
        "train-cache-dir-is-a-file",
        "train",
        ["--out", "{dir}/r", "--cache-dir", "{file}"],
        2,
        "--cache-dir {file}: is a file",
    ),
    (
        "train-data-dir-is-a-file-with-download",
        "train",
        ["--out", "{dir}/r", "--download", "--data-dir", "{file}"],
        2,
        "--data-dir {file}: is a file",
    ),
    (
        "train-device-cuda-without-gpu",
        "train",
        ["--device", "cuda", "--out", "{dir}/r"],
        2,
        "--device cuda: torch sees no CUDA device",
    ),
    ("train-device-unknown", "train", ["--device", "gpu0", "--out", "{dir}/r"], 2, "--device gpu0: must be auto, cpu"),
    ("train-lr-nan", "train", ["--lr", "nan"], 2, "argument --lr: must be a finite number > 0, got nan"),
    ("train-lr-inf", "train", ["--lr", "inf"], 2, "argument --lr: must be a finite number > 0, got inf"),
    ("train-lr-zero", "train", ["--lr", "0"], 2, "argument --lr: must be a finite number > 0"),
    ("train-lr-text", "train", ["--lr", "fast"], 2, "argument --lr: must be a number > 0, got 'fast'"),
    ("train-grad-clip-nan", "train", ["--grad-clip", "nan"], 2, "argument --grad-clip: must be a finite number >= 0"),
    (
        "train-grad-clip-negative",
        "train",
        ["--grad-clip", "-1"],
        2,
        "argument --grad-clip: must be a finite number >= 0",
    ),
    ("train-weight-decay-inf", "train", ["--weight-decay", "inf"], 2, "argument --weight-decay: must be a finite"),
    ("train-scl-weight-nan", "train", ["--scl-weight", "nan"], 2, "argument --scl-weight: must be a finite"),
    ("train-scl-temperature-zero", "train", ["--scl-temperature", "0"], 2, "argument --scl-temperature: must be"),
    ("train-epochs-zero", "train", ["--epochs", "0"], 2, "argument --epochs: must be a finite integer >= 1, got 0"),
    ("train-epochs-float", "train", ["--epochs", "2.5"], 2, "argument --epochs: must be an integer >= 1"),
    (
        "train-batch-size-zero",
        "train",
        ["--batch-size", "0"],
        2,
        "argument --batch-size: must be a finite integer >= 1",
    ),
    ("train-patience-zero", "train", ["--patience", "0"], 2, "argument --patience: must be"),
    ("train-workers-negative", "train", ["--workers", "-1"], 2, "argument --workers: must be a finite integer >= 0"),
    ("train-limit-train-zero", "train", ["--limit-train", "0"], 2, "argument --limit-train: must be"),
    ("train-limit-eval-zero", "train", ["--limit-eval", "0"], 2, "argument --limit-eval: must be"),
    ("train-model-unknown", "train", ["--model", "m9"], 2, "argument --model: invalid choice: 'm9'"),
    ("train-dataset-unknown", "train", ["--dataset", "no-such-set", "--out", "{dir}/r"], 2, "no-such-set"),
    (
        "train-joint-needs-two-datasets",
        "train",
        ["--model", "joint", "--dataset", "randman", "--out", "{dir}/r"],
        2,
        "<visual>+<audio>",
    ),
    (
        "train-batch-larger-than-training-set",
        "train",
        ["--dataset", "randman", "--limit-train", "16", "--batch-size", "32", "--out", "{dir}/r", "--no-progress"],
        2,
        "batch_size (--batch-size) 32 is larger than the training set of randman (16 samples)",
    ),
    # --- python -m sparsespike.study
    ("study-out-is-a-file", "study", ["--out", "{file}", "--quick"], 2, "--out {file}: is a file, not a folder"),
    ("study-out-unwritable", "study", ["--out", "{ro}/study", "--quick"], 2, "--out {ro}/study: cannot write in {ro}"),
    (
        "study-figures-folder-is-a-file",
        "study",
        ["--out", "{dir}", "--quick"],
        2,
        "{dir}/figures is a file, not a folder",
    ),
    (
        "study-cache-dir-is-a-file",
        "study",
        ["--out", "{dir}/s", "--cache-dir", "{file}"],
        2,
        "--cache-dir {file}: is a file",
    ),
    (
        "study-device-cuda-without-gpu",
        "study",
        ["--device", "cuda", "--out", "{dir}/s"],
        2,
        "--device cuda: torch sees no CUDA device",
    ),
    ("study-device-unknown", "study", ["--device", "tpu", "--out", "{dir}/s"], 2, "--device tpu: must be auto, cpu"),
    ("study-lr-nan", "study", ["--lr", "nan"], 2, "argument --lr: must be a finite number > 0, got nan"),
    ("study-epochs-zero", "study", ["--epochs", "0"], 2, "argument --epochs: must be"),
    ("study-batch-size-zero", "study", ["--batch-size", "0"], 2, "argument --batch-size: must be"),
    ("study-energy-samples-zero", "study", ["--energy-samples", "0"], 2, "argument --energy-samples: must be"),
    ("study-per-class-negative", "study", ["--per-class", "-1"], 2, "argument --per-class: must be"),
    ("study-one-dataset", "study", ["--datasets", "randman", "--out", "{dir}/s"], 2, "--datasets takes two names"),
    (
        "study-datasets-swapped",
        "study",
        ["--datasets", "randman,saccade-digits", "--out", "{dir}/s"],
        2,
        "'randman' is a audio dataset, expected a visual",
    ),
    ("study-models-unknown", "study", ["--models", "m1,m9", "--out", "{dir}/s"], 2, "models must be"),
    (
        "study-batch-larger-than-training-set",
        "study",
        ["--limit-train", "10", "--out", "{dir}/s", "--no-progress"],
        2,
        "batch_size (--batch-size) 32 is larger than the training set of randman (10 samples)",
    ),
    # --- python -m sparsespike.energy
    ("energy-json-is-a-folder", "energy", ["--json", "{dir}"], 2, "--json {dir}: is a folder, not a file"),
    ("energy-json-below-a-file", "energy", ["--json", "{file}/e.json"], 2, "{file} is a file, not a folder"),
    ("energy-json-unwritable", "energy", ["--json", "{ro}/e.json"], 2, "--json {ro}/e.json: cannot write in {ro}"),
    ("energy-cache-dir-is-a-file", "energy", ["--cache-dir", "{file}"], 2, "--cache-dir {file}: is a file"),
    ("energy-device-cuda-without-gpu", "energy", ["--device", "cuda"], 2, "--device cuda: torch sees no CUDA device"),
    ("energy-device-auto", "energy", ["--device", "auto"], 2, "--device auto: must be cpu, cuda or cuda:N"),
    ("energy-samples-zero", "energy", ["--samples", "0"], 2, "argument --samples: must be"),
    ("energy-batch-size-negative", "energy", ["--batch-size", "-4"], 2, "argument --batch-size: must be"),
    (
        "energy-mac-pj-nan",
        "energy",
        ["--accumulate-pj", "0.9", "--mac-pj", "nan"],
        2,
        "argument --mac-pj: must be a finite",
    ),
    (
        "energy-accumulate-pj-inf",
        "energy",
        ["--accumulate-pj", "inf", "--mac-pj", "4.6"],
        2,
        "argument --accumulate-pj",
    ),
    ("energy-half-a-custom-profile", "energy", ["--mac-pj", "4.6"], 2, "needs both --accumulate-pj and --mac-pj"),
    ("energy-profile-unknown", "energy", ["--profile", "7nm"], 2, "unknown --profile '7nm'"),
    (
        "energy-checkpoint-missing",
        "energy",
        ["--checkpoint", "{dir}/missing.pt"],
        2,
        "--checkpoint {dir}/missing.pt: no such file",
    ),
    ("energy-checkpoint-is-a-folder", "energy", ["--checkpoint", "{dir}"], 2, "--checkpoint {dir}: is a folder"),
    ("energy-checkpoint-corrupt", "energy", ["--checkpoint", "{file}"], 2, "is truncated or corrupt"),
    ("energy-dataset-unknown", "energy", ["--dataset", "no-such-set"], 2, "no-such-set"),
    # --- python -m sparsespike.bench
    ("bench-json-is-a-folder", "bench", ["--json", "{dir}"], 2, "--json {dir}: is a folder, not a file"),
    ("bench-json-below-a-file", "bench", ["--json", "{file}/b.json"], 2, "{file} is a file, not a folder"),
    ("bench-json-unwritable", "bench", ["--json", "{ro}/b.json"], 2, "--json {ro}/b.json: cannot write in {ro}"),
    ("bench-profile-is-a-folder", "bench", ["--profile", "{dir}"], 2, "--profile {dir}: is a folder, not a file"),
    ("bench-plots-is-a-file", "bench", ["--plots", "{file}", "--suite", "models"], 2, "--plots {file}: is a file"),
    (
        "bench-plots-without-the-models-suite",
        "bench",
        ["--plots", "{dir}/p", "--suite", "lif"],
        2,
        "--plots {dir}/p: plots the models suite",
    ),
    ("bench-device-cuda-without-gpu", "bench", ["--device", "cuda"], 2, "--device cuda: torch sees no CUDA device"),
    ("bench-device-meta", "bench", ["--device", "meta"], 2, "--device meta: must be cpu, cuda or cuda:N"),
    ("bench-threads-zero", "bench", ["--threads", "0"], 2, "argument --threads: must be a finite integer >= 1"),
    ("bench-repeats-zero", "bench", ["--repeats", "0"], 2, "argument --repeats: must be"),
    ("bench-suite-unknown", "bench", ["--suite", "gpu"], 2, "argument --suite: invalid choice: 'gpu'"),
    (
        "bench-no-models-case-matches",
        "bench",
        ["--suite", "lif", "--suite", "models", "--model", "m3", "--quick"],
        2,
        "--model m3 --modality any: no models case matches",
    ),
    ("bench-full-with-suite", "bench", ["--full", "--suite", "lif"], 2, "--full runs every suite: give it or"),
    ("bench-headline-other-model", "bench", ["--model", "m4"], 2, "--model m4: the headline is M1"),
    # --- python -m sparsespike.bench.report
    ("report-results-missing", "bench.report", ["--results", "{dir}/no"], 2, "--results {dir}/no: no such folder"),
    ("report-results-empty", "bench.report", ["--results", "{dir}"], 2, "--results {dir}: no *.json files"),
    ("report-out-is-a-folder", "bench.report", ["--out", "{dir}"], 2, "--out {dir}: is a folder, not a file"),
    ("report-out-unwritable", "bench.report", ["--out", "{ro}/p.md"], 2, "--out {ro}/p.md: cannot write in {ro}"),
]


def _unwritable(tmp_path: Path) -> Path:
    """A folder where creating a file fails: read-only for a normal user; for root (who may write
    anywhere) a virtual file system that refuses new files."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    for candidate in ("/sys", "/proc"):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return Path(candidate)
    pytest.skip("no unwritable folder for root on this machine")


@pytest.fixture
def places(tmp_path, tmp_path_factory, monkeypatch):
    data = tmp_path_factory.getbasetemp() / "bad-cli-data"  # shared: the embedded sets are cached once
    monkeypatch.setenv("SPARSESPIKE_DATA", str(data))
    file = tmp_path / "a-file"
    file.write_bytes(b"not a checkpoint")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "figures").write_text("a file where the study puts its figures")
    return {"file": str(file), "dir": str(folder), "ro": str(_unwritable(tmp_path)), "data": str(data)}


def _run(cli: str, argv: list[str], capsys) -> tuple[int, str]:
    try:
        status = CLIS[cli].main(argv)
    except SystemExit as exit_:  # argparse's own checks
        status = exit_.code
    return status, capsys.readouterr().err


def _params():
    for case, cli, argv, status, fragment in ROWS:
        marks = NO_CUDA if "no CUDA device" in fragment else ()
        yield pytest.param(cli, argv, status, fragment, id=case, marks=marks)


@pytest.mark.parametrize("cli, argv, status, fragment", list(_params()))
def test_bad_command_line(cli, argv, status, fragment, places, capsys):
    got, err = _run(cli, [arg.format(**places) for arg in argv], capsys)
    assert got == status, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    # one line, the last (progress bars of a dataset's conversion may come before it)
    assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err
    assert errors[0].startswith(f"python -m sparsespike.{cli}: error: ")
    assert fragment.format(**places) in errors[0]


def test_every_row_has_a_unique_id():
    ids = [row[0] for row in ROWS]
    assert len(ids) == len(set(ids))


def test_the_exit_status_reaches_the_shell(places):
    # once through the real entry point: status 2, one line, no traceback
    result = subprocess.run(
        [sys.executable, "-m", "sparsespike.energy", "--json", places["dir"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == f"python -m sparsespike.energy: error: --json {places['dir']}: is a folder, not a file\n"
