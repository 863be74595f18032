"""Runs dbt for the project, with a profile that works out of the box: in a subprocess, or
in this process for `featurekit refresh`."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from . import warehouse_lock
from .errors import CheckFailed, FeaturekitError
from .project import Project

# dbt's own command line, in a fresh Python process.
DBT_COMMAND = [sys.executable, "-c", "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; cli()"]
# dbt commands that never open the warehouse, so need not wait for its readers
WITHOUT_WAREHOUSE = {"deps", "parse", "clean", "ls", "list", "init"}


def _profile_args(project: Project) -> list[str]:
    """Where dbt reads the project's profile: the directory featurekit found it in."""
    return ["--profiles-dir", str(project.target.profiles_dir)]


def run_dbt(project: Project, *args: str, quiet: bool = False) -> None:
    """Runs `dbt ARGS` in the project directory; raises FeaturekitError when it fails."""
    command = [*DBT_COMMAND, *args, *_profile_args(project)]
    env = dict(os.environ, **_warehouse_override(project))
    with _writing(project, args):
        result = subprocess.run(
            command,
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
            text=True,
        )
    if result.returncode != 0:
        # dbt exits 1 when a model or test failed (a check found a problem), 2 on bad usage.
        error = CheckFailed if result.returncode == 1 else FeaturekitError
        if quiet:
            lines = [line for line in (result.stdout or "").splitlines() if line.strip()]
            raise error(f"`dbt {' '.join(args)}` failed (exit {result.returncode}); dbt's last lines:\n" + "\n".join(lines[-15:]))
        raise error(f"`dbt {' '.join(args)}` failed (exit {result.returncode}); see dbt's output above")


def build_in_process(project: Project, *args: str) -> None:
    """Runs `dbt build ARGS` in this process; raises like run_dbt. dbt parses the project once
    (writing manifest.json, which publish reads) and builds from that manifest, so the refresh
    pays neither a second Python start nor dbt's second manifest.json after the run (~0.7 s of
    a 1M-key refresh). run_results.json is written as dbt writes it. The warehouse is closed
    before returning, so that publish can open it. For a command whose process ends soon
    after: the objects alive after the parse stay out of the garbage collector's sight."""
    from dbt.cli.main import dbtRunner

    common = ["--project-dir", str(project.root), *_profile_args(project)]
    with _writing(project, ["build"]), _dbt_environment(project):
        try:
            parsed = dbtRunner().invoke(["parse", "--quiet", *common])
            _raise_unless_ok(parsed, "parse")
            # dbt's parsed project is a large heap that lives to the end of the process: out of
            # the garbage collector's sight, collections during the build and the final one at
            # exit no longer walk it (exit 0.5 -> 0.04 s)
            gc.freeze()
            built = dbtRunner(manifest=parsed.result).invoke(["build", "--no-write-json", *common, *args])
            if built.result is not None:
                built.result.write(str(project.target_dir / "run_results.json"))
            _raise_unless_ok(built, "build", *args)
        finally:
            if project.target.type == "duckdb":  # dbt-duckdb keeps its database open for the process
                from dbt.adapters.duckdb.connections import DuckDBConnectionManager

                DuckDBConnectionManager.close_all_connections()


def _raise_unless_ok(result, *command: str) -> None:
    if result.success:
        return
    # as dbt's own exit codes: 1 when a model or test failed (a check found a problem), 2 otherwise
    error = FeaturekitError if result.exception is not None else CheckFailed
    reason = f" ({str(result.exception).strip().splitlines()[0]})" if result.exception is not None else ""
    raise error(f"`dbt {' '.join(command)}` failed{reason}; see dbt's output above")


def _writing(project: Project, args) -> AbstractContextManager:
    """The warehouse's writer lock (warehouse_lock.py) for a dbt command that opens a DuckDB
    warehouse: it waits for featurekit's readers instead of failing on DuckDB's file lock."""
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command is None or command in WITHOUT_WAREHOUSE:
        return nullcontext()
    try:
        warehouse = project.warehouse
    except FeaturekitError:  # not a DuckDB file, or a profile dbt will report on itself
        return nullcontext()
    return warehouse_lock.writing(warehouse)


def _warehouse_override(project: Project) -> dict[str, str]:
    """FEATUREKIT_WAREHOUSE for dbt when featurekit was told to read another DuckDB file than
    the profile's: a profile that reads env_var('FEATUREKIT_WAREHOUSE') (as the example
    shop's does) then builds that file."""
    return {"FEATUREKIT_WAREHOUSE": str(project.warehouse)} if project.warehouse_override else {}


@contextmanager
def _dbt_environment(project: Project):
    """What run_dbt gives its subprocess: the project as working directory (relative paths in
    the project resolve against it) and the warehouse override."""
    cwd, saved = os.getcwd(), dict(os.environ)
    os.chdir(project.root)
    os.environ.update(_warehouse_override(project))
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)
