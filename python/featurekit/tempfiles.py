"""Temp files of atomic writes: a file is written as .NAME.PID.tmp beside it, then renamed into
place. A writer killed before its rename leaves its temp file behind; the next writer of the
same file removes the ones whose process is gone."""

from __future__ import annotations

import glob
import os
from pathlib import Path


def temp_path(path: Path) -> Path:
    """Where this process writes `path` before renaming it into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale(path: Path) -> None:
    """Removes the temp files of `path` (temp_path) left by processes that are gone."""
    prefix = f".{path.name}."
    for leftover in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = leftover.name[len(prefix) : -len(".tmp")]
        if pid.isdigit() and not process_alive(pid):
            remove(leftover)


def remove(path: Path) -> None:
    """Removes a file if it is there; a failure (a read-only directory) must not hide the error
    that made us clean up, so it is ignored."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def process_alive(pid) -> bool:
    """Whether process `pid` exists (one we may not signal does)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
