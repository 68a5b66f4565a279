"""Backend discovery and the fallback when the C++ extension is missing."""

import subprocess
import sys
import textwrap

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
