"""Helpers every bench script shares: time a command in its own process with its peak RSS,
take medians, print a plain table."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    seconds: float  # wall time from process start to exit
    cpu_seconds: float  # user + system time: what the run costs however busy the machine is
    peak_rss: int  # bytes, the process's own high-water mark (ru_maxrss)
    jvm_peak_rss: int = 0  # bytes, the high-water mark of a JVM it started (run_measured_tree)


# Measures one command from a small wrapper process: ru_maxrss also counts what a child held
# before exec (a forked copy of its parent), so the parent must be small for the figure to
# be the command's own. The wrapper writes "seconds cpu_seconds peak_kib exit_code" to the
# file argv[1].
_WRAPPER = """
import os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as f:
    cpu = usage.ru_utime + usage.ru_stime
    f.write(f"{seconds} {cpu} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_measured(command: list[str], cwd=None) -> Run:
    """Runs `command` in a fresh process and measures it alone: wall time including process
    start, and its peak RSS. Raises on a non-zero exit, showing the command's output."""
    seconds, cpu, peak_kib = _wrapped(_WRAPPER, command, cwd)
    return Run(float(seconds), float(cpu), int(peak_kib) * 1024)  # Linux reports KiB


def _wrapped(wrapper: str, command: list[str], cwd) -> list[str]:
    """The figures a wrapper script reports for `command` (its last one, the exit code, checked)."""
    command = [shutil.which(command[0]) or command[0], *map(str, command[1:])]
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report")
        result = subprocess.run(
            [sys.executable, "-S", "-c", wrapper, report, *command], cwd=cwd, capture_output=True, text=True, check=False
        )
        figures = Path(report).read_text().split() if os.path.exists(report) else ["-1"]
    if result.returncode != 0 or int(figures[-1]) != 0:
        raise RuntimeError(f"{' '.join(command)} exited {figures[-1]}:\n{(result.stdout + result.stderr)[-4000:]}")
    return figures[:-1]


# Measures a command that starts a JVM (PySpark's gateway, a child that outlives its parent
# by a moment): the wrapper becomes the subreaper of every descendant, so the orphaned JVM
# comes back to it and its CPU is counted once, from wait4; each process's peak RSS (VmHWM)
# is read from /proc every 0.1 s while it lives. It waits for every descendant (an embedded
# Derby metastore admits one JVM at a time) and writes "seconds cpu_seconds python_peak_kib
# jvm_peak_kib exit_code", seconds being the command's own (to its exit).
_TREE_WRAPPER = """
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
started = time.perf_counter()
main = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
me, peaks, java, cpu, seconds, code = os.getpid(), {}, set(), 0.0, 0.0, -1
def poll():
    parents = {}
    for entry in os.listdir('/proc'):
        try:
            if entry.isdigit():
                parents[int(entry)] = int(open(f'/proc/{entry}/stat').read().rsplit(')', 1)[1].split()[1])
        except OSError:
            pass
    tree, frontier = set(), {me}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    for pid in tree:
        try:
            fields = dict(line.split(':', 1) for line in open(f'/proc/{pid}/status'))
            peaks[pid] = max(peaks.get(pid, 0), int(fields['VmHWM'].split()[0]))
            if fields['Name'].strip() == 'java':
                java.add(pid)
        except (OSError, KeyError, ValueError):
            pass
while True:
    poll()
    try:
        pid, status, usage = os.wait4(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        time.sleep(0.1)
        continue
    cpu += usage.ru_utime + usage.ru_stime
    if pid == main:
        seconds, code = time.perf_counter() - started, os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    f.write(f"{seconds} {cpu} {peaks.get(main, 0)} {max([peaks[p] for p in java] or [0])} {code}")
"""


def run_measured_tree(command: list[str], cwd=None) -> Run:
    """run_measured for a command whose process starts a JVM: CPU of the process and every
    descendant, the process's peak RSS and the JVM's (see _TREE_WRAPPER)."""
    seconds, cpu, python_kib, jvm_kib = _wrapped(_TREE_WRAPPER, command, cwd)
    return Run(float(seconds), float(cpu), int(python_kib) * 1024, int(jvm_kib) * 1024)


def summarize(runs: list[Run]) -> Run:
    """Repeated runs as one: the median times and the highest peak RSS."""
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.cpu_seconds for r in runs),
        max(r.peak_rss for r in runs),
        max(r.jvm_peak_rss for r in runs),
    )


def format_table(headers: list[str], rows: list[list], left: int = 1) -> str:
    """A plain text table: the first `left` columns left-aligned, the others right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values):
        return "  ".join(v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, cells)])


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


def bench_project_files(name: str, extra_config: str = "") -> dict[str, str]:
    """dbt_project.yml and profiles.yml.example of a bench dbt project named `name`: a
    project of its own that uses featurekit's dbt package, as a user's would (use_featurekit)."""
    return {
        "dbt_project.yml": (
            f"name: {name}\nversion: '1.0'\nconfig-version: 2\nprofile: {name}\n"
            'model-paths: ["models"]\nmacro-paths: ["macros"]\n' + extra_config
        ),
        "profiles.yml.example": (
            f"{name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
            "      path: \"{{ env_var('FEATUREKIT_WAREHOUSE', 'warehouse.duckdb') }}\"\n      threads: 2\n"
        ),
    }


def use_featurekit(project: Path) -> None:
    """`featurekit init --upgrade` in a bench project: the working tree's dbt package, vendored."""
    done = subprocess.run(
        [sys.executable, "-m", "featurekit", "init", "--upgrade", "--project-dir", str(project)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        sys.exit(f"featurekit init failed in {project}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
