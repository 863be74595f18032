"""featurekit's readers and writers of a DuckDB warehouse wait for each other, in real
concurrent processes: a refresh never fails because someone reads, a reader never fails
because a build runs, a waiting writer is not starved, and every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from online_helpers import copy_built_project

pytestmark = pytest.mark.slow

# A process that holds the warehouse until a line arrives on its stdin: as a featurekit reader
# (connect_warehouse), as a featurekit writer (the writer lock, then the file read-write, as dbt
# opens it), or as a process outside featurekit writing the file (DuckDB's lock only).
HOLDER = """
import sys, duckdb
from pathlib import Path
from featurekit import warehouse_lock
from featurekit.project import Project
role, project = sys.argv[1], Path(sys.argv[2])
warehouse = project / "warehouse.duckdb"
def hold():
    print("holding", flush=True)
    sys.stdin.readline()
if role == "reader":
    with Project(project).connect_warehouse() as con:
        con.execute("SELECT 1").fetchall()
        hold()
elif role == "writer":
    with warehouse_lock.writing(warehouse), duckdb.connect(str(warehouse)):
        hold()
else:
    with duckdb.connect(str(warehouse)):
        hold()
"""


@pytest.fixture
def project(built_project, tmp_path) -> Path:
    return copy_built_project(built_project, tmp_path / "project")


@contextmanager
def holding(role: str, project: Path):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, role, str(project)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "holding"
        yield process
    finally:
        if process.poll() is None:
            process.stdin.write("\n")
            process.stdin.close()
            process.wait(timeout=30)


def start(*args: str, timeout: float = 120) -> subprocess.Popen:
    env = dict(os.environ, FEATUREKIT_LOCK_TIMEOUT=str(timeout))
    return subprocess.Popen(
        [sys.executable, "-m", "featurekit", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def waits(process: subprocess.Popen) -> str:
    """The line in which the process says that it waits (before anything but its progress)."""
    line = process.stderr.readline()
    while line.startswith("featurekit: ") and "waiting for" not in line:
        line = process.stderr.readline()
    assert "waiting for warehouse.duckdb" in line, line
    time.sleep(0.5)
    assert process.poll() is None, "it stopped waiting while the warehouse was still held"
    return line


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=180)
    return process.returncode, out, err


BUILDS = {
    "dbt": ["dbt", "run", "--select", "stg_customers"],
    "refresh": ["refresh", "--select", "stg_customers"],  # dbt in featurekit's own process, then publish
}


def build(project: Path, timeout: float = 120, command: str = "dbt") -> subprocess.Popen:
    return start(*BUILDS[command], "--project-dir", str(project), timeout=timeout)


def test_plain_dbt_beside_a_reader_fails_on_duckdbs_lock(project):
    """What the README says a plain `dbt build` beside a featurekit reader does."""
    with holding("reader", project):
        plain = subprocess.run(
            [sys.executable, "-c", "from dbt.cli.main import cli; cli()", "run", "--select", "stg_customers",
             "--profiles-dir", ".featurekit"],
            cwd=project, capture_output=True, text=True,
        )
    assert plain.returncode != 0 and "lock" in plain.stdout.lower(), plain.stdout[-2000:]


@pytest.mark.parametrize("command", BUILDS)
def test_a_build_waits_for_a_reader_then_runs(project, command):
    with holding("reader", project) as reader:
        writer = build(project, command=command)
        assert "featurekit commands are reading or building it" in waits(writer)
        reader.stdin.write("\n")
        reader.stdin.flush()
        code, out, err = finish(writer)
    assert code == 0, out[-2000:] + err
    assert "Completed successfully" in out or "published snapshot" in err


def test_a_killed_reader_does_not_keep_the_warehouse_locked(project):
    with holding("reader", project) as reader:
        writer = build(project)
        waits(writer)
        reader.send_signal(signal.SIGKILL)
        code, out, err = finish(writer)
    assert code == 0, out[-2000:] + err


def test_a_reader_waits_for_a_build_then_reads(project):
    args = ["freshness", "--now", "2024-11-01T00:00:00Z", "--project-dir", str(project)]
    alone = subprocess.run([sys.executable, "-m", "featurekit", *args], capture_output=True, text=True)
    with holding("writer", project) as writer:
        reader = start(*args)
        assert "another featurekit command is building it" in waits(reader)
        writer.stdin.write("\n")
        writer.stdin.flush()
        code, out, err = finish(reader)
    assert (code, table(out)) == (alone.returncode, table(alone.stdout)), err
    assert "customer_orders_v1" in out


def table(freshness_output: str) -> list[str]:
    """freshness's table: its first line says how old the snapshot is now."""
    return freshness_output.splitlines()[1:]


def test_a_waiting_build_closes_the_door_to_new_readers(project):
    """Writer preference: readers arriving while a build waits queue behind it, so a stream
    of overlapping training sets cannot postpone a scheduled refresh for ever."""
    with holding("reader", project) as first_reader:
        writer = build(project)
        waits(writer)
        later_reader = start("freshness", "--project-dir", str(project))
        assert "another featurekit command is building it" in waits(later_reader)
        first_reader.stdin.write("\n")
        first_reader.stdin.flush()
        assert finish(writer)[0] == 0
        assert finish(later_reader)[0] in (0, 1)  # 1: a view past its SLA; it did read


def test_a_reader_waits_for_a_writer_outside_featurekit(project):
    with holding("outsider", project) as outsider:
        reader = start("freshness", "--project-dir", str(project))
        assert "a process outside featurekit writes it (a plain dbt build?)" in waits(reader)
        outsider.stdin.write("\n")
        outsider.stdin.flush()
        code, out, err = finish(reader)
    assert code in (0, 1) and "customer_orders_v1" in out, err


@pytest.mark.parametrize("role, command", [("reader", "build"), ("writer", "freshness"), ("outsider", "freshness")])
def test_every_wait_is_bounded_with_one_clear_line(project, role, command):
    results = project / "target" / "run_results.json"
    before = results.read_bytes()
    with holding(role, project):
        started = time.monotonic()
        process = build(project, timeout=1) if command == "build" else start("freshness", "--project-dir", str(project), timeout=1)
        code, out, err = finish(process)
        waited = time.monotonic() - started
    assert code == 2, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: warehouse warehouse.duckdb is still in use after 1 s: ")
    assert last.endswith("retry when it is done, or wait longer with FEATUREKIT_LOCK_TIMEOUT=SECONDS")
    assert "Traceback" not in err
    assert waited < 30
    assert results.read_bytes() == before  # dbt never ran


def test_a_bad_timeout_is_one_clear_line(project):
    result = subprocess.run(
        [sys.executable, "-m", "featurekit", "dbt", "run", "--project-dir", str(project)],
        capture_output=True, text=True, env=dict(os.environ, FEATUREKIT_LOCK_TIMEOUT="soon"),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: FEATUREKIT_LOCK_TIMEOUT='soon' is not a number of seconds; set it to e.g. 600, or unset it"
    )
