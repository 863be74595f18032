"""Readers and writers of a DuckDB warehouse take turns instead of failing.

DuckDB lets one process write a file or many read it, and refuses the others at once: a
`dbt build` started while `train-set` reads the warehouse fails on the file lock (dbt exit 2),
and so does a reader started during a build. featurekit's commands first take a readers-writer
lock on a file beside the warehouse, so they wait for each other instead: readers (train-set,
publish, freshness, parity) share it, a writer (`featurekit refresh`, `featurekit dbt build`)
holds it alone. A waiting writer also closes a gate to new readers, so a stream of training sets
cannot starve a scheduled refresh. Every wait is bounded ($FEATUREKIT_LOCK_TIMEOUT seconds) and
says what it waits for. flock(2) locks belong to an open file and end with the process, so a
killed command never leaves the warehouse locked.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .errors import FeaturekitError

TIMEOUT_VARIABLE = "FEATUREKIT_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 900.0  # a scheduled refresh outwaits a long training set; a hung one is reported
SUFFIX = ".featurekit-lock"


def lock_paths(warehouse: Path) -> tuple[Path, Path]:
    """(the readers-writer lock, the writers' gate) of a warehouse file."""
    return warehouse.with_name(warehouse.name + SUFFIX), warehouse.with_name(warehouse.name + ".gate" + SUFFIX)


@contextmanager
def reading(warehouse: Path):
    """Shared with other readers; waits while a featurekit writer builds or waits to build."""
    lock, gate = lock_paths(warehouse)
    deadline = Deadline(warehouse, "another featurekit command is building it")
    with ExitStack() as held:
        with _flock(gate, fcntl.LOCK_SH, deadline):
            held.enter_context(_flock(lock, fcntl.LOCK_SH, deadline))
        yield


@contextmanager
def writing(warehouse: Path):
    """Alone: waits for the readers in progress and keeps new ones out until done."""
    lock, gate = lock_paths(warehouse)
    deadline = Deadline(warehouse, "featurekit commands are reading or building it")
    with _flock(gate, fcntl.LOCK_EX, deadline), _flock(lock, fcntl.LOCK_EX, deadline):
        yield


class Deadline:
    """One bounded wait: says once, on stderr, what it waits for; raises when time is up."""

    def __init__(self, warehouse: Path, reason: str):
        self.warehouse, self.reason = warehouse, reason
        self.timeout = timeout_seconds()
        self.end = time.monotonic() + self.timeout
        self.announced = False
        self.pause = 0.02

    def wait(self, reason: str | None = None) -> None:
        """Sleeps a little (longer each time, up to 0.5 s), or raises when the time is up."""
        reason = reason or self.reason
        if time.monotonic() >= self.end:
            raise FeaturekitError(
                f"warehouse {self.warehouse.name} is still in use after {self.timeout:g} s: {reason}; "
                f"retry when it is done, or wait longer with {TIMEOUT_VARIABLE}=SECONDS"
            )
        if not self.announced:
            print(f"featurekit: waiting for {self.warehouse.name}: {reason} (up to {self.timeout:g} s)", file=sys.stderr, flush=True)
            self.announced = True
        time.sleep(min(self.pause, max(self.end - time.monotonic(), 0)))
        self.pause = min(self.pause * 2, 0.5)


def timeout_seconds() -> float:
    value = os.environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise FeaturekitError(f"{TIMEOUT_VARIABLE}={value!r} is not a number of seconds; set it to e.g. 600, or unset it")
    return seconds


@contextmanager
def _flock(path: Path, mode: int, deadline: Deadline):
    fd = _open(path)
    if fd is None:  # a read-only folder nobody can lock in: DuckDB's own lock still guards the file
        yield
        return
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                deadline.wait()
        yield
    finally:
        os.close(fd)  # releases the lock


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        try:
            return os.open(path, os.O_RDONLY)  # flock needs no write access to a file that exists
        except OSError:
            return None
