"""Files written under a temporary name that carries the writer's process id, and the
clean-up of those whose writer is gone.

A file is written as `.NAME.PID.tmp` beside its final name NAME and renamed into place once
complete, so a reader never sees half a file (publish adds the kind after the pid,
`.<id>.<pid>.duckdb.tmp`; DuckDB may add `.wal`). A writer killed midway (kill -9, a full
disk, a crash) leaves its temporary file behind; the next writer removes the ones whose
process is no longer alive, before it writes: a full disk does not stay full.
"""

from __future__ import annotations

import glob
import os
import shutil
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


def remove_stale_in(directory: Path, name: str = "*") -> list[Path]:
    """Removes every temporary file (or directory) of names matching `name` in `directory`
    whose writer is gone, whatever follows its pid; returns them. A name without a pid is
    not ours and is left alone."""
    removed = []
    for path in Path(directory).glob(f".{name}.*tmp*"):
        pid = writer_pid(path.name)
        if pid is None or pid == os.getpid() or process_alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            remove(path)
        removed.append(path)
    return removed


def writer_pid(name: str) -> int | None:
    """The pid in a temporary file's name (the first all-digit part after the name), or None."""
    parts = name.split(".")
    if not name.startswith(".") or "tmp" not in parts:
        return None
    return next((int(part) for part in parts[2:] if part.isdigit()), None)


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
