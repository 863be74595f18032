"""Files written under a temporary name that carries the writer's process id, and the
clean-up of those whose writer is gone.

A file (or a directory) is written as `.NAME.PID.tmp` beside its final name NAME and renamed
into place once complete, so a reader never sees half of it (a kind may follow the pid:
publish's `.<id>.<pid>.duckdb.tmp`, train-set's `.DIR.<pid>.old.tmp` for the output it
replaces; DuckDB may add `.wal`). A writer killed midway (kill -9, a full
disk, a crash) leaves its temporary file behind; the next writer removes the ones whose
process is no longer alive, before it writes: a full disk does not stay full.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path


def temp_path(path: Path, kind: str = "") -> Path:
    """Where this process writes `path` before renaming it into place (`kind` names another
    temporary of the same path)."""
    return path.with_name(f".{path.name}.{os.getpid()}{'.' + kind if kind else ''}.tmp")


def remove_stale(path: Path) -> None:
    """Removes the temp files and directories of `path` (temp_path, any kind) left by
    processes that are gone."""
    prefix = f".{path.name}."
    for leftover in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = leftover.name[len(prefix) : -len(".tmp")].split(".")[0]
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
    """Removes a file, or a directory with its content, if it is there; a failure (a read-only
    directory) must not hide the error that made us clean up, so it is ignored."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
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


def fsync(path: Path) -> None:
    """Puts a written file's content on disk before it is renamed into place or relied on."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
