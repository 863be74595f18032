"""bench/train_set.py keeps working: at its tiny scale it generates data, builds the bench
dbt project, runs featurekit train-set and both baselines, and they agree value by value.
Timings are not checked here (they belong to the bench's own table)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_train_set_bench_runs_and_the_three_methods_agree(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_set.py"), "--scale", "tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("one view", "three views"))]
    assert len(rows) == 8, result.stdout  # two cases x (featurekit, raw DuckDB, raw DuckDB 2GB, pandas)
    assert all(row.split()[-1] == "yes" for row in rows), result.stdout  # same values


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_train_set_bench_runs_and_agrees(postgres_server, tmp_path):
    """--engine postgres at tiny scale (its own throwaway cluster; the fixture proves PostgreSQL
    is here, or fails under CI=true): every method, the same values."""
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_set.py"), "--scale", "tiny", "--engine", "postgres", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    methods = ["featurekit (PostgreSQL)", "LATERAL", "LATERAL sorted+covering", "featurekit (DuckDB)", "raw DuckDB ASOF"]
    assert all(method in result.stdout for method in methods), result.stdout
    assert "values: every method equal to featurekit's, row for row" in result.stdout
