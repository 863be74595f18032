"""What the online tests share: a private copy of the built example project, rows appended to
its seeds, a real `featurekit serve` on 127.0.0.1, comparing served values with train-set
values, and what dbt's log shows an online table's build read."""

from __future__ import annotations

import csv
import math
import re
import resource
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def copy_built_project(built_project: Path, destination: Path) -> Path:
    """The session's built project (warehouse, manifest and published snapshot included),
    copied so that a test may publish, roll back or break it. The link to featurekit's dbt
    package becomes a private copy (dbt_packages/featurekit), which a test may edit."""
    shutil.copytree(built_project, destination, symlinks=False, ignore=shutil.ignore_patterns("*.wal", "logs"))
    return destination


LOADED = "2024-11-02 06:00:00"  # later than every load in the example's seeds


def online_views(project: Path) -> list[str]:
    """The example project's views that have an online table."""
    return sorted(p.stem[len("online_"):] for p in (project / "models" / "online").glob("online_*.sql"))


def append(project: Path, seed: str, rows: list[dict]) -> None:
    """Rows added to one of the example's seeds, loaded at LOADED unless they say when."""
    path = project / "seeds" / f"{seed}.csv"
    with open(path) as f:
        header = next(csv.reader(f))
    with open(path, "a", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([[{"loaded_at": LOADED, **row}[c] for c in header] for row in rows])


def history_read(log: str, relation: str) -> bool:
    """Whether a dbt log holds featurekit.online_plan's read of view `relation`'s rows loaded
    up to its online table's watermark (the count and sum of their load times)."""
    return re.search(re.escape(relation) + r" where \w+ <= cast\('[^']+' as timestamp\)\s*\n", log) is not None


@contextmanager
def running_server(*args: str, cwd: Path | None = None, open_files: int | None = None):
    """`featurekit serve --port 0 ARGS` in a subprocess (at most `open_files` open files);
    yields (base URL, process). Stops it with SIGTERM, as a process manager would."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))) if open_files else None
    process = subprocess.Popen(
        [sys.executable, "-m", "featurekit", "serve", "--port", "0", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
    )
    try:
        line = process.stderr.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if not found:
            process.kill()
            raise AssertionError(f"serve did not start: {line}{process.stderr.read()}")
        yield found.group(1), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _plain(value):
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def mismatches(served: pd.DataFrame, offline: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    """Per column, the rows (index, served, offline) whose values differ; nulls of any kind
    are equal to each other, and nothing else is."""
    assert len(served) == len(offline)
    found = {}
    for column in columns:
        a = [_plain(v) for v in served[column].tolist()]
        b = [_plain(v) for v in offline[column].tolist()]
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y or type(x) is not type(y) and not _same_number(x, y)]
        if bad:
            found[column] = bad
    return found


def _same_number(x, y) -> bool:
    """Served ints and floats are compared with train-set's by value (pandas may widen an
    integer column with nulls to float); dtypes are checked separately."""
    numbers = (int, float)
    return isinstance(x, numbers) and isinstance(y, numbers) and not isinstance(x, bool) and x == y


def dead_pid() -> int:
    """The id of a process that has exited (what a killed writer leaves in a file name)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
