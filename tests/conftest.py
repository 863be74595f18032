"""Shared fixtures: real copies of the example dbt project, built once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import featurekit
from featurekit.dbt_package import PACKAGE_DIR
from featurekit.macros import MacroRenderer
import postgres_server as postgres_server_module

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dbt_project.yml", "profiles.yml.example", "models", "macros", "seeds"]


def pytest_report_header(config):
    import dbt.version

    return f"featurekit {featurekit.__version__}, dbt-core {dbt.version.__version__}, duckdb {duckdb.__version__}"


def copy_project(destination: Path) -> Path:
    """A fresh copy of the example dbt project (no target/, no warehouse), with featurekit's
    dbt package installed as `dbt deps` installs a local package (a link in dbt_packages/),
    without paying dbt's start-up for it."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name)
        else:
            shutil.copy2(source, destination / name)
    (destination / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE_DIR}\n")
    (destination / "dbt_packages").mkdir()
    (destination / "dbt_packages" / "featurekit").symlink_to(PACKAGE_DIR)
    return destination


def featurekit_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Runs the real `python -m featurekit` in a subprocess."""
    result = subprocess.run(
        [sys.executable, "-m", "featurekit", *args], cwd=cwd, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"featurekit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """The example project, built once with `featurekit refresh` of every node (a real dbt build).
    Tests must not modify it; copy it with copy_project() to change things."""
    project = copy_project(tmp_path_factory.mktemp("built") / "project")
    featurekit_cli("refresh", "--select", "shop", "--project-dir", str(project))  # all, training models too
    return project


# Both implementations of every macro: DuckDB's and the portable default__.
ADAPTERS = ["duckdb", "default"]


@pytest.fixture(scope="session")
def renderers(built_project) -> dict[str, MacroRenderer]:
    """The project's macros rendered outside dbt, from the built project's manifest."""
    manifest = json.loads((built_project / "target" / "manifest.json").read_text())
    return {adapter: MacroRenderer(manifest, adapter) for adapter in ADAPTERS}


@pytest.fixture
def oracle_db(tmp_path):
    con = duckdb.connect(str(tmp_path / "oracle.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


def require_engine(reason: str):
    """A test's engine is missing: under CI=true that is a failure, locally a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the session (tests/postgres_server.py)."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        require_engine("psycopg2 is not installed: pip install -e '.[postgres]'")
    try:
        server = postgres_server_module.start()
    except postgres_server_module.PostgresMissing as e:
        require_engine(str(e))
    yield server
    postgres_server_module.stop(server)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local Spark for the whole run (tests/spark_session.py)."""
    import spark_session

    reason = spark_session.missing()
    if reason:
        require_engine(reason)
    session = spark_session.start(tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()
