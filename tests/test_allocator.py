"""sparsespike._allocator: a bad SPARSESPIKE_MALLOC is a clear error, importing sparsespike
changes nothing process-wide and the command-line tools opt in. The page faults it saves are
measured by the bench: python -m sparsespike.bench --suite allocator."""

import os
import subprocess
import sys

import pytest


def test_bad_setting_is_a_clear_error(monkeypatch):
    from sparsespike import _allocator

    monkeypatch.setattr(_allocator, "mode", "unset")
    monkeypatch.setenv("SPARSESPIKE_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match="SPARSESPIKE_MALLOC must be 'reuse' or 'system'"):
        _allocator.configure()


_IMPORT = """
import os, sys
before = dict(os.environ)
import sparsespike
from sparsespike import _allocator
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(_allocator.mode, changed)
"""


def test_importing_changes_nothing_process_wide():
    # no environment variable set or changed, no mallopt call: the host program's process is its own
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "SPARSESPIKE_MALLOC")}
    out = subprocess.run([sys.executable, "-c", _IMPORT], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split(maxsplit=1) == ["unset", "[]\n"]


def test_the_command_line_tools_opt_in(monkeypatch, capsys):
    from sparsespike import _allocator
    from sparsespike import train as train_cli

    calls = []
    monkeypatch.setattr(_allocator, "configure", lambda: calls.append(1) or "reuse")
    with pytest.raises(SystemExit) as exit_info:  # a usage error (argparse's), after the opt-in
        train_cli.main(["--lr", "nan"])
    assert exit_info.value.code == 2 and calls == [1]
