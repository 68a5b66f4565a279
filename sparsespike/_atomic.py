"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the new one.

The bytes go to a temporary file in the target's folder, are flushed and fsynced, then renamed over
the target with os.replace (atomic within one file system); the folder is fsynced so the rename
survives a power cut. On any failure before the rename the temporary file is removed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Union


def atomic_write(path: Union[str, Path], data: Union[bytes, memoryview]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file a normal open()'s mode
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


# what atomic_write's mkstemp names its temporary files: .<name>.<8 random characters>.tmp
_PARTIAL = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def remove_partial_writes(folder: Union[str, Path]) -> list[Path]:
    """Delete the temporary files that atomic_write left in ``folder`` (not below it) when its
    process was killed mid-write; returns them. Call it only on a folder no other process is
    writing (a run folder its one run opens)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if _PARTIAL.fullmatch(path.name) and path.is_file():
            try:
                path.unlink()
                removed.append(path)
            except OSError:  # read-only or gone: a later write reports the folder, if it matters
                pass
    return removed


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
