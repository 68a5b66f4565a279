"""Backend discovery and the fallback when the C++ extension is missing."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import sparsespike


def test_backends_report():
    info = sparsespike.backends()
    assert info["reference"] is True
    assert info["cpp"] is True, info["cpp_error"]
    assert info["triton"] is True, info["triton_error"]
    assert info["default_backend"] == "auto"


def test_import_without_extension_falls_back_with_one_warning():
    script = textwrap.dedent(
        """
        import sys, warnings
        sys.modules["sparsespike._C"] = None  # as if the .so were missing
        import torch, sparsespike
        info = sparsespike.backends()
        assert info["cpp"] is False and "sparsespike._C" in info["cpp_error"], info
        w = torch.randn(4, 6)
        x = (torch.rand(5, 6) < 0.5).float()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                y = sparsespike.spike_linear(x, w)
                torch.testing.assert_close(y, x @ w.t())
        messages = [str(c.message) for c in caught if "C++ extension" in str(c.message)]
        assert len(messages) == 1, messages
        try:
            sparsespike.spike_linear(x, w, backend="cpp")
        except RuntimeError as e:
            assert "C++ extension is unavailable" in str(e)
        else:
            raise AssertionError("backend='cpp' without the extension must raise")
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


_TRITON_AFTER_TORCH = """
import torch
p = torch.nn.Parameter(torch.randn(3))
torch.optim.AdamW([p], fused=True)  # imports triton before anything set TRITON_INTERPRET
import sparsespike
out = sparsespike.spike_linear(torch.ones(2, 4), torch.ones(3, 4), backend="triton")
print(out.sum().item())
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter case is for machines without CUDA")
@pytest.mark.parametrize("interpret_env", [False, True])
def test_triton_imported_before_the_interpreter_was_chosen(interpret_env):
    # torch imports triton for its fused optimizers; without TRITON_INTERPRET=1 in the environment
    # triton's own library is then compiled-mode and no kernel can be interpreted: a clear error
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret_env:
        env["TRITON_INTERPRET"] = "1"
    run = subprocess.run([sys.executable, "-c", _TRITON_AFTER_TORCH], env=env, capture_output=True, text=True)
    if interpret_env:
        assert run.returncode == 0, run.stderr
        assert float(run.stdout) == 24.0
    else:
        assert run.returncode != 0
        assert "triton was imported before TRITON_INTERPRET=1 was set" in run.stderr
        assert "Cannot call @triton.jit" not in run.stderr


def test_every_op_and_its_reference_are_exported_at_the_top_level():
    for op in (
        "spike_linear",
        "spike_conv2d",
        "lif",
        "hgrn_scan",
        "modern_hopfield",
        "spiking_hopfield_recall",
        "supcon_loss",
    ):
        for name in (op, f"{op}_reference"):
            assert name in sparsespike.__all__ and callable(getattr(sparsespike, name)), name
