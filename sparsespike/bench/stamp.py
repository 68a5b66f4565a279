"""The stamp of a bench run, written into its JSON: the machine (CPU model, threads, torch,
device) and the run (date, sparsespike version and commit, command line), so that a table read
later says where and from what code it was measured."""

from __future__ import annotations

import platform
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from .. import __version__, _allocator

# the folder holding the sparsespike package: a checkout's root when run from one
_SOURCE = Path(__file__).resolve().parents[2]


def machine_info(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": cpu_model(),
        "device": str(device),
        "malloc": _allocator.mode,  # glibc settings in effect (sparsespike._allocator)
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception:
        info["triton"] = None
    return info


def run_info(prog: str, argv: list[str], started: datetime) -> dict:
    return {
        "date": started.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sparsespike": __version__,
        "commit": commit(),
        "command": " ".join([prog, *map(shlex.quote, argv)]),
    }


def commit() -> str:
    """The checkout's short commit ("-dirty" after it when tracked files differ from it), or
    "unknown" for an installed copy, no git, or git failing."""
    if not (_SOURCE / ".git").exists():  # an installed package (a worktree's .git is a file)
        return "unknown"
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(_SOURCE), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
