"""`featurekit train-set -o DIR/`: a directory of Parquet part files holding the rows of the
single-file output, in label order, with its sidecar DIR.featureset.json; written beside DIR
and renamed into place; replacing only an earlier train-set output or an empty directory.
On DuckDB here (written by DuckDB); on Spark, by Spark's writer, in test_spark.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from featurekit.cli import main

LABELS = "customer_id,label_ts,churned\n8,2024-06-01 09:00:00,0\n1,2024-05-01 00:00:00,1\n3,2024-03-01T09:00:00,1\n"


def train_set(*args: str) -> tuple[int, str]:
    """The real command in-process; (exit code, stderr)."""
    result = CliRunner().invoke(main, ["train-set", *args, "-q"])
    return result.exit_code, result.stderr


def directory_rows(directory: Path) -> tuple[list[tuple], list[tuple]]:
    """(column names and types, rows) of a directory output, its files read in name order."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = sorted(str(p) for p in directory.glob("*.parquet"))
    relation = con.execute(f"SELECT * FROM read_parquet({files})")
    return [(d[0], str(d[1])) for d in relation.description], relation.fetchall()


def file_rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    relation = con.execute(f"SELECT * FROM read_parquet('{path}')")
    return [(d[0], str(d[1])) for d in relation.description], relation.fetchall()


@pytest.fixture
def workdir(tmp_path, monkeypatch, built_project):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.csv").write_text(LABELS)
    return tmp_path


def run(built_project: Path, output: str, labels: str = "labels.csv") -> tuple[int, str]:
    return train_set(labels, "--feature-set", "churn_model", "-o", output, "--project-dir", str(built_project))


def test_a_directory_holds_the_rows_of_the_file_output_in_order_with_its_sidecar(built_project, workdir):
    labels = str(built_project / "seeds" / "churn_labels.csv")
    assert run(built_project, "train.parquet", labels) == (0, "")
    assert run(built_project, "train/", labels) == (0, "")

    assert directory_rows(workdir / "train") == file_rows(workdir / "train.parquet")
    assert pq.read_table(workdir / "train").schema.names == pq.read_schema(workdir / "train.parquet").names
    sidecar = json.loads((workdir / "train.featureset.json").read_text())
    assert sidecar["output"] == {"path": "train", "rows": 6323, "format": "parquet-directory", "files": ["part-00000.parquet"]}
    single = json.loads((workdir / "train.parquet.featureset.json").read_text())
    assert sidecar["views"] == single["views"]
    assert sorted(os.listdir(workdir)) == ["labels.csv", "train", "train.featureset.json", "train.parquet",
                                           "train.parquet.featureset.json"]


def test_an_earlier_output_is_replaced_and_an_empty_directory_taken(built_project, workdir):
    (workdir / "empty").mkdir()
    assert run(built_project, "empty") == (0, "")  # an existing directory, named without the /
    assert os.listdir(workdir / "empty") == ["part-00000.parquet"]

    assert run(built_project, "train/") == (0, "")
    (workdir / "train" / "part-00007.parquet").write_bytes(b"from last week")
    assert run(built_project, "train/") == (0, "")
    assert os.listdir(workdir / "train") == ["part-00000.parquet"]
    assert [row[0] for row in directory_rows(workdir / "train")[1]] == [8, 1, 3]  # label order
    assert sorted(p for p in os.listdir(workdir) if p.startswith(".")) == []  # nothing left aside


@pytest.mark.parametrize("case", ["a user's directory", "a file", "holds the labels", "failed run"])
def test_what_is_not_a_train_set_output_is_left_untouched(built_project, workdir, case):
    (workdir / "train").mkdir()
    message = {
        "a user's directory": "-o train/: train is a directory that is not a train-set output (no train.featureset.json "
                              "beside it); empty or remove it, or choose another directory",
        "a file": "-o train/: train is a file; remove it or name a directory",
        "holds the labels": "-o train/ holds the label file train/labels.csv; write the training set elsewhere",
        "failed run": "bad.csv row 1: label_ts 'not a time' is not a timestamp; write e.g. 2024-05-01 09:00:00",
    }[case]
    labels = "labels.csv"
    if case == "a user's directory":
        (workdir / "train" / "notes.txt").write_text("mine")
    elif case == "a file":
        (workdir / "train").rmdir()
        (workdir / "train").write_text("mine")
    elif case == "holds the labels":
        labels = "train/labels.csv"
        (workdir / "train" / "labels.csv").write_text(LABELS)
        (workdir / "train.featureset.json").write_text("{}")
    else:
        assert run(built_project, "train/") == (0, "")
        labels = "bad.csv"
        (workdir / "bad.csv").write_text("customer_id,label_ts\n1,not a time\n")
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}

    assert run(built_project, "train/", labels) == (2, f"Error: {message}\n")
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_a_killed_runs_temporary_directories_are_removed_by_the_next(built_project, workdir):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    leftovers = [workdir / f".train.{gone.pid}.tmp", workdir / f".train.{gone.pid}.old.tmp"]
    for leftover in leftovers:
        leftover.mkdir()
        (leftover / "part-00000.parquet").write_bytes(b"half")
    mine = workdir / f".train.{os.getpid()}x.tmp"  # not a writer's name: not ours to remove
    mine.mkdir()
    assert run(built_project, "train/") == (0, "")
    assert not any(p.exists() for p in leftovers) and mine.is_dir()
