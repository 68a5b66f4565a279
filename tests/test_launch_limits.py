"""Launch grids and fusion options of the Triton kernels, checked without running any kernel.

CUDA allows 2^31 - 1 programs along grid axis 0 and 65535 along axes 1 and 2. Every kernel module
computes its grids in small named functions that its launchers call; ``launch_grids`` lists them
for given shapes, so the grids of the study's layers at batch 128 are computed here in pure
Python (no GPU, no interpreter launch) and checked against the limits.

Every launch in kernels/*.py takes its grid from a named function that its module's launch_grids
calls too (read from the source: launcher and check share the code), and passes ``**EXACT`` (no
contraction: bit-equality with the torch reference) or ``**TOLERANT`` (contraction allowed:
compared at a tolerance) explicitly.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from sparsespike._backend import require_triton_kernels

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
BATCH = 128
AUDIO_T, VISUAL_T = 100, 25
CLASSES = 10
FEATURES = 512


def _kernels(op: str):
    module = require_triton_kernels(op)
    assert Path(module.__file__).resolve().parent == KERNELS  # this checkout's kernels/
    return module


def _launch():
    """kernels/_launch.py, imported after the op modules have mounted this checkout's kernels/
    as sparsespike.kernels."""
    _kernels("lif")
    module = importlib.import_module("sparsespike.kernels._launch")
    assert Path(module.__file__).resolve().parent == KERNELS
    return module


def _study_grids() -> dict[str, tuple]:
    """The grid of every launch of the study's models (M1 audio and visual, the memories) at batch 128."""
    lif, linear, conv = _kernels("lif"), _kernels("spike_linear"), _kernels("spike_conv2d")
    hgrn, modern, spiking = _kernels("hgrn_scan"), _kernels("modern_hopfield"), _kernels("spiking_hopfield")
    grids: dict[str, tuple] = {}

    def add(prefix: str, launches: dict[str, tuple]) -> None:
        for name, grid in launches.items():
            grids[f"{prefix}: {name}"] = grid

    # audio M1: Linear(700, 1024) -> LIF -> Linear(1024, 1024) -> LIF -> Linear(1024, 512) -> LIF
    # -> Linear(512, 10) -> LIF, T folded into the batch
    rows = AUDIO_T * BATCH
    for fan_in, fan_out in ((700, 1024), (1024, 1024), (1024, FEATURES), (FEATURES, CLASSES)):
        add(f"audio spike_linear [{rows} x {fan_in}] -> {fan_out}", linear.launch_grids(rows, fan_in, fan_out))
        add(f"audio lif [{AUDIO_T}, {BATCH} * {fan_out}]", lif.launch_grids(AUDIO_T, BATCH * fan_out))

    # visual M1: Conv(2, 64, 3, p1) -> LIF -> Conv(64, 128, 3, p1) -> LIF -> Linear(128*34*34, 512)
    # -> LIF -> Linear(512, 10) -> LIF on N-MNIST frames [2, 34, 34]
    n, size = VISUAL_T * BATCH, (34, 34)
    for c_in, c_out in ((2, 64), (64, 128)):
        add(
            f"visual spike_conv2d [{n}, {c_in}, 34, 34] -> {c_out}",
            conv.launch_grids(n, c_in, size, c_out, (3, 3), size),
        )
        add(
            f"visual lif [{VISUAL_T}, {BATCH} * {c_out} * 34 * 34]", lif.launch_grids(VISUAL_T, BATCH * c_out * 34 * 34)
        )
    flat = 128 * 34 * 34
    for fan_in, fan_out in ((flat, FEATURES), (FEATURES, CLASSES)):
        add(f"visual spike_linear [{n} x {fan_in}] -> {fan_out}", linear.launch_grids(n, fan_in, fan_out))
        add(f"visual lif [{VISUAL_T}, {BATCH} * {fan_out}]", lif.launch_grids(VISUAL_T, BATCH * fan_out))

    # memories on the 512-d spike sequence: HGRN over time, modern Hopfield per time step
    # (256 patterns in the study; 65536 for a large memory), the spiking Hopfield recall
    for steps in (AUDIO_T, VISUAL_T):
        add(f"hgrn_scan [{steps}, {BATCH} * {FEATURES}]", hgrn.launch_grids(steps, BATCH * FEATURES))
    for queries in (VISUAL_T * BATCH, AUDIO_T * BATCH):
        for patterns in (256, 65536):
            add(
                f"modern_hopfield [{queries} x {FEATURES}], {patterns} patterns",
                modern.launch_grids(queries, patterns, FEATURES, FEATURES),
            )
    add(f"spiking_hopfield_recall [{BATCH}, 1024]", spiking.launch_grids(BATCH, 1024))
    return grids


def test_launch_helpers():
    launch = _launch()
    assert launch.EXACT == {"enable_fp_fusion": False}
    assert launch.TOLERANT == {"enable_fp_fusion": True}
    assert launch.check_grid((2**31 - 1, 65535, 65535)) == (2**31 - 1, 65535, 65535)
    for bad in ((2**31,), (1, 65536), (1, 1, 65536), (0,), (), (1, 1, 1, 1)):
        with pytest.raises(ValueError):
            launch.check_grid(bad)
    assert [launch.cdiv(a, 128) for a in (1, 127, 128, 129, 12800 * 1024)] == [1, 1, 1, 2, 102400]


def test_study_grids_within_cuda_limits():
    check_grid = _launch().check_grid
    grids = _study_grids()
    # every kernel of every module appears
    launched = {name.split(": ", 1)[1].split("/")[-1].split(" ")[0] for name in grids}
    assert launched == {
        "_lif_forward_kernel",
        "_lif_backward_kernel",
        "_compact_rows_kernel",
        "_gather_rows_kernel",
        "_masked_dot_kernel",
        "_conv_gather_kernel",
        "_conv_grad_weight_kernel",
        "_conv_masked_grad_kernel",
        "_hgrn_forward_kernel",
        "_hgrn_backward_kernel",
        "_forward_kernel",
        "_backward_scores_kernel",
        "_product_kernel",
        "_column_sums_kernel",
        "_recall_kernel",
    }
    for name, grid in grids.items():
        assert check_grid(grid) == grid, name


def test_study_grid_values():
    """A few grids written out, so that a change of block sizes or layouts shows here."""
    grids = _study_grids()
    assert grids["audio lif [100, 128 * 1024]: _lif_forward_kernel"] == (1024,)
    assert grids["audio spike_linear [12800 x 700] -> 1024: forward/_gather_rows_kernel"] == (12800, 8)
    assert grids["visual lif [25, 128 * 128 * 34 * 34]: _lif_backward_kernel"] == (147968,)
    assert grids["visual spike_conv2d [3200, 2, 34, 34] -> 64: forward/_compact_rows_kernel"] == (3699200,)
    assert grids["visual spike_conv2d [3200, 64, 34, 34] -> 128: forward/_conv_gather_kernel"] == (3699200, 1)
    assert grids["visual spike_conv2d [3200, 64, 34, 34] -> 128: grad_weight_t/_compact_rows_kernel"] == (204800,)
    assert grids["visual spike_linear [3200 x 147968] -> 512: grad_weight_t/_gather_rows_kernel"] == (147968, 4)
    assert grids["hgrn_scan [100, 128 * 512]: _hgrn_forward_kernel"] == (512,)
    assert grids["modern_hopfield [12800 x 512], 256 patterns: forward/_forward_kernel"] == (3200,)
    assert grids["modern_hopfield [12800 x 512], 65536 patterns: backward/_backward_scores_kernel"] == (409600,)
    assert grids["spiking_hopfield_recall [128, 1024]: _recall_kernel"] == (128,)


# which launches must be exact (enable_fp_fusion=False) and which may contract multiply-adds
FUSION = {
    "hgrn_scan.py": {"_hgrn_forward_kernel": "TOLERANT", "_hgrn_backward_kernel": "TOLERANT"},
    "lif.py": {"_lif_forward_kernel": "EXACT", "_lif_backward_kernel": "EXACT"},
    "modern_hopfield.py": {
        "_forward_kernel": "TOLERANT",
        "_backward_scores_kernel": "TOLERANT",
        "_product_kernel": "TOLERANT",
    },
    "spike_conv2d.py": {
        "_conv_gather_kernel": "TOLERANT",
        "_conv_grad_weight_kernel": "TOLERANT",
        "_conv_masked_grad_kernel": "TOLERANT",
    },
    "spike_linear.py": {
        "_compact_rows_kernel": "EXACT",
        "_gather_rows_kernel": "TOLERANT",
        "_masked_dot_kernel": "TOLERANT",
    },
    "spiking_hopfield.py": {"_column_sums_kernel": "EXACT", "_recall_kernel": "EXACT"},
}


def _launches(tree: ast.AST):
    """(kernel name, call) of every `kernel[grid](...)` in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript):
            target = node.func.value
            if isinstance(target, ast.Name):
                yield target.id, node


def _calls_in(tree: ast.AST, function: str) -> set[str]:
    """Names of the functions called (directly) in a module-level function."""
    bodies = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    return {n.func.id for b in bodies for n in ast.walk(b) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def test_every_launch_chooses_fusion():
    found = {}
    for path in sorted(KERNELS.glob("*.py")):
        tree = ast.parse(path.read_text())
        jitted = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d).startswith("triton.jit") for d in node.decorator_list)
        }
        launch_grids_calls = _calls_in(tree, "launch_grids")
        for name, call in _launches(tree):
            assert name in jitted, f"{path.name}: {name}[...] is not a kernel of this module"
            # the grid comes from a named function that launch_grids() calls too, never a literal
            grid = call.func.slice
            assert isinstance(grid, ast.Call) and isinstance(grid.func, ast.Name), f"{path.name}: {name}"
            assert grid.func.id in launch_grids_calls, f"{path.name}: {name}[{grid.func.id}(...)] not in launch_grids"
            options = [ast.unparse(k.value) for k in call.keywords if k.arg is None]
            explicit = [k.arg for k in call.keywords if k.arg == "enable_fp_fusion"]
            assert not explicit, f"{path.name}: {name} sets enable_fp_fusion directly, use **EXACT / **TOLERANT"
            assert len(options) == 1 and options[0] in ("EXACT", "TOLERANT"), f"{path.name}: {name} {options}"
            found.setdefault(path.name, {})
            assert found[path.name].setdefault(name, options[0]) == options[0], f"{path.name}: {name}"
    assert found == FUSION


@pytest.mark.parametrize("module", sorted(FUSION))
def test_tolerant_modules_say_so(module):
    """A module with a tolerant launch says in its docstring that it is compared at a tolerance and may
    contract multiply-adds; an exact one says it launches without contraction."""
    doc = " ".join(ast.get_docstring(ast.parse((KERNELS / module).read_text())).split())
    if "TOLERANT" in FUSION[module].values():
        assert "tolerance" in doc and "enable_fp_fusion=True" in doc and "fused multiply-add" in doc
    if "EXACT" in FUSION[module].values():
        assert "EXACT" in doc
