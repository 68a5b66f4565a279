"""The Triton kernels compile for a real GPU (sm_90), checked on CPU: a fast part of the matrix that
`make gpu-compile` runs in full (sparsespike/compile_check.py)."""

import json
import subprocess
import sys

import pytest

from sparsespike.compile_check import SHARED_LIMIT, Result

KERNEL_MODULES = {"spike_linear", "spike_conv2d", "lif", "hgrn_scan", "modern_hopfield", "spiking_hopfield"}
EXACT_MODULES = {"lif", "spiking_hopfield"}  # promise the reference's spikes bit for bit


@pytest.fixture(scope="module")
def ci_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("compile") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "sparsespike.compile_check", "--subset", "ci", "--archs", "90", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["triton"]  # the compiling release is recorded
    return proc, [Result(**r) for r in data["results"]]


def test_every_kernel_compiles_for_sm90_without_spills(ci_results):
    proc, results = ci_results
    problems = {f"{r.module}.{r.kernel} {r.specialisation}": r.problems() for r in results if r.problems()}
    assert not problems, problems
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {r.module for r in results} == KERNEL_MODULES
    assert all(r.arch == 90 and r.registers and r.registers <= 255 for r in results)


def test_exact_kernels_launch_without_fusion_and_have_no_fma(ci_results):
    _, results = ci_results
    exact = [r for r in results if r.module in EXACT_MODULES]
    assert exact and all(r.exact for r in exact), [(r.kernel, r.specialisation) for r in exact if not r.exact]
    assert all(r.fma == 0 for r in exact), [(r.kernel, r.fma) for r in exact]
    # the kernels that write spikes and membranes have no fma instruction at all
    spikes = [r for r in exact if "backward" not in r.kernel]
    assert spikes and all(r.fma_explicit == 0 for r in spikes), [(r.kernel, r.fma_explicit) for r in spikes]


def test_the_fma_count_sees_contractions(ci_results):
    """A count that is always zero would pass the test above: tolerant kernels do contract."""
    _, results = ci_results
    assert any(r.fma for r in results if not r.exact), [(r.kernel, r.fma) for r in results]


def test_the_table_prints_every_result(ci_results):
    from sparsespike.compile_check import table

    _, results = ci_results
    assert len(table(results).splitlines()) == len(results) + 2


def test_the_report_summarises_each_kernel(ci_results, tmp_path):
    from sparsespike.compile_check import render

    _, results = ci_results
    run = {"triton": "9.9", "commit": "abc1234", "date": "d", "subset": "ci", "results": [r.__dict__ for r in results]}
    (tmp_path / "triton-9.9.json").write_text(json.dumps(run))
    page = render(tmp_path)
    assert f"## triton 9.9: {len(results)} compilations, 0 failed" in page
    kernels = {(r.module, r.kernel) for r in results}
    for module, kernel in kernels:  # one summary row per kernel (sm_90 only here), then every result
        assert page.count(f"| {module}.{kernel} | 90 |") == 1
        assert page.count(f"| {module}.{kernel} |") == 1 + sum(
            (r.module, r.kernel) == (module, kernel) for r in results
        )


@pytest.mark.parametrize(
    "result, problem",
    [
        (Result("m", "k", "s", 90, ok=False, error="CompilationError: x"), "compile error"),
        (Result("m", "k", "s", 90, ok=True, registers=40, spill_bytes=8, shared_bytes=0, fma=0), "spilled"),
        (
            Result("m", "k", "s", 80, ok=True, registers=40, spill_bytes=0, shared_bytes=SHARED_LIMIT[80] + 1, fma=0),
            "shared",
        ),
        (Result("m", "k", "s", 90, ok=True, registers=40, spill_bytes=0, shared_bytes=0, fma=2, exact=True), "FMA"),
    ],
)
def test_each_failure_is_reported(result, problem):
    assert any(problem in p for p in result.problems())


def test_a_tolerant_kernel_may_contract():
    assert not Result("m", "k", "s", 90, ok=True, registers=40, spill_bytes=0, shared_bytes=0, fma=9).problems()
