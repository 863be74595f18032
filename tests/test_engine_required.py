"""Under CI=true a test whose engine is missing fails, never skips; locally it skips with the
reason (conftest.require_engine, which the PostgreSQL and Spark fixtures use)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CASE = """
from conftest import require_engine

def test_needs_an_engine():
    require_engine("no such engine here: install it")
"""


@pytest.mark.parametrize("ci, outcome", [("true", "1 failed"), ("", "1 skipped")])
def test_a_missing_engine_fails_under_ci_and_skips_locally(tmp_path, ci, outcome):
    (tmp_path / "test_case.py").write_text(CASE)
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(TESTS)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "no such engine here: install it" in result.stdout


def test_spark_without_java_is_a_missing_engine(monkeypatch):
    import spark_session

    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert spark_session.missing() == "no Java runtime for Spark: apt-get install openjdk-17-jre-headless"
