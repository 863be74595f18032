"""Files written under a temporary name that carries the writer's process id, and the
clean-up of those whose writer is gone.

A file is written as `.<name>.<pid>.tmp` beside its final name (publish adds the kind after
the pid, `.<id>.<pid>.duckdb.tmp`; DuckDB may add `.wal`) and renamed into place once
complete, so a reader never sees half a file. A writer killed midway (kill -9, a full disk,
a crash) leaves its temporary file behind; the next writer in the directory removes every
one whose process is no longer alive, before it writes: a full disk does not stay full.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def temp_path(path: Path) -> Path:
    """Where this process writes `path` before renaming it into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def writer_pid(name: str) -> int | None:
    """The pid in a temporary file's name (the first all-digit part after the name), or None."""
    parts = name.split(".")
    if not name.startswith(".") or "tmp" not in parts:
        return None
    return next((int(part) for part in parts[2:] if part.isdigit()), None)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(directory: Path, name: str = "*") -> list[Path]:
    """Removes the temporary files (or directories) of `name` in `directory` whose writer is
    gone; returns them. A name without a pid is not ours and is left alone."""
    removed = []
    for path in Path(directory).glob(f".{name}.*tmp*"):
        pid = writer_pid(path.name)
        if pid is None or pid == os.getpid() or process_alive(pid):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
