"""`featurekit train-set --labels-table`: label rows already in the warehouse are joined where
they are, and give the same rows as the same labels in a file. On DuckDB here; PostgreSQL and
Spark in their own test modules."""

from __future__ import annotations

import json
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from featurekit.cli import main


def train_set(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["train-set", *args, "-q"])
    return result.exit_code, result.stderr


def sorted_rows(path) -> list[tuple]:
    """The rows of a Parquet file in one order (a table's rows come in label time and key order,
    a file's in file order); timestamps with a zone as their UTC wall clock."""
    rows = [tuple(v.replace(tzinfo=None) if hasattr(v, "tzinfo") and v.tzinfo else v for v in row.values())
            for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=repr)


@pytest.fixture
def warehouse(built_project, tmp_path):
    """A copy of the built example's warehouse with label tables of its own in schema extra."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_project / "warehouse.duckdb", path)
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("""
        CREATE SCHEMA extra;
        CREATE TABLE extra.zoned AS SELECT customer_id, CAST(label_ts AS TIMESTAMPTZ) AS label_ts, churned FROM churn_labels;
        CREATE TABLE extra.narrow_keys AS SELECT CAST(customer_id AS INTEGER) AS customer_id, label_ts, churned FROM churn_labels;
        CREATE TABLE extra.text_times AS SELECT customer_id, CAST(label_ts AS VARCHAR) AS label_ts FROM churn_labels;
        CREATE TABLE extra.float_keys AS SELECT CAST(customer_id AS DOUBLE) AS customer_id, label_ts FROM churn_labels;
        CREATE TABLE extra.empty AS SELECT * FROM churn_labels LIMIT 0;
        CREATE TABLE extra.no_key AS SELECT CASE WHEN customer_id % 100 = 7 THEN NULL ELSE customer_id END AS customer_id, label_ts FROM churn_labels;
        CREATE TABLE extra.no_time AS SELECT customer_id, CASE WHEN customer_id = 3 THEN NULL ELSE label_ts END AS label_ts FROM churn_labels;
        CREATE TABLE extra.own_column AS SELECT customer_id, label_ts, 1 AS __fk_row FROM churn_labels;
        CREATE TABLE extra.output_column AS SELECT customer_id, label_ts, 1 AS orders_30d FROM churn_labels;
        CREATE TABLE extra.wrong_key AS SELECT customer_id AS user_id, label_ts FROM churn_labels;
    """)
    counts = con.execute("""SELECT (SELECT count(*) FILTER (WHERE customer_id IS NULL) FROM extra.no_key),
                                   (SELECT count(*) FILTER (WHERE label_ts IS NULL) FROM extra.no_time)""").fetchall()[0]
    con.close()
    return path, counts


def test_a_labels_table_gives_the_rows_of_the_same_labels_in_a_file(built_project, tmp_path):
    """The example's seed, by its dbt name: the same rows as seeds/churn_labels.csv, ordered by
    label time and key; the sidecar names the table."""
    from_file, from_table = tmp_path / "file.parquet", tmp_path / "table.parquet"
    common = ["--feature-set", "churn_model", "--project-dir", str(built_project)]
    assert train_set(str(built_project / "seeds" / "churn_labels.csv"), "-o", str(from_file), *common) == (0, "")
    assert train_set("--labels-table", "churn_labels", "-o", str(from_table), *common) == (0, "")
    assert pq.read_schema(from_table) == pq.read_schema(from_file)
    assert sorted_rows(from_table) == sorted_rows(from_file)
    order = [(row["label_ts"], row["customer_id"]) for row in pq.read_table(from_table).to_pylist()]
    assert order == sorted(order)
    labels = json.loads(from_table.with_name("table.parquet.featureset.json").read_text())["labels"]
    assert labels == {"table": "churn_labels", "relation": '"warehouse"."main"."churn_labels"', "rows": 6323,
                      "columns": ["customer_id", "label_ts", "churned"], "timestamp_column": "label_ts"}


@pytest.mark.parametrize("table", ["zoned", "narrow_keys"])
def test_zoned_times_and_narrower_integer_keys_give_the_same_features(built_project, warehouse, tmp_path, table):
    path, _ = warehouse
    from_file, from_table = tmp_path / "file.parquet", tmp_path / "table.parquet"
    common = ["--feature-set", "churn_model", "--project-dir", str(built_project), "--warehouse", str(path)]
    assert train_set(str(built_project / "seeds" / "churn_labels.csv"), "-o", str(from_file), *common) == (0, "")
    assert train_set("--labels-table", f"warehouse.extra.{table}", "-o", str(from_table), *common) == (0, "")
    assert sorted_rows(from_table) == sorted_rows(from_file)


def test_a_labels_table_the_join_cannot_use_is_one_line_and_writes_nothing(built_project, warehouse, tmp_path):
    path, (no_key, no_time) = warehouse
    cases = {
        "text_times": "label_ts holds VARCHAR values, not timestamps; make it a timestamp in the table",
        "float_keys": "key customer_id is DOUBLE but the feature views' customer_id is BIGINT; cast it in the table",
        "no_key": f"{no_key} rows have no key customer_id; every label needs its time and keys",
        "no_time": f"{no_time} rows have no label_ts; every label needs its time and keys",
        "own_column": "column '__fk_row' starts with __fk_, which featurekit reserves for its own columns; rename it",
        "output_column": "column 'orders_30d' is also an output of feature view customer_orders_v1; rename or drop it",
        "wrong_key": "no key column 'customer_id', which feature view customer_profile_v1 (entity customer) joins on; "
                     "its columns are user_id, label_ts",
    }
    out = tmp_path / "out"
    out.mkdir()
    for table, message in cases.items():
        code, stderr = train_set("--labels-table", f"warehouse.extra.{table}", "--feature-set", "churn_model",
                                 "-o", str(out / "train.parquet"), "--project-dir", str(built_project), "--warehouse", str(path))
        assert (code, stderr) == (2, f"Error: labels table warehouse.extra.{table}: {message}\n"), table
    code, stderr = train_set("--labels-table", "warehouse.extra.empty", "--feature-set", "churn_model",
                             "-o", str(out / "train.parquet"), "--project-dir", str(built_project), "--warehouse", str(path))
    assert (code, stderr) == (2, "Error: labels table warehouse.extra.empty has no label rows\n")
    assert list(out.iterdir()) == []


def test_a_labels_table_that_is_not_there_is_one_line(built_project, tmp_path):
    common = ["--feature-set", "churn_model", "-o", str(tmp_path / "train.parquet"), "--project-dir", str(built_project)]
    assert train_set("--labels-table", "no_such_model", *common) == (
        2, "Error: --labels-table no_such_model: no model, seed or snapshot of that name in the dbt project; "
           "name one, or write the table as schema.table\n")
    code, stderr = train_set("--labels-table", "main.no_such_table", *common)
    assert code == 2 and stderr.startswith("Error: labels table main.no_such_table: cannot read main.no_such_table in the "
                                           "warehouse (Catalog Error: Table with name no_such_table does not exist!")
    assert stderr.endswith("; build it or name another\n") and stderr.count("\n") == 1
    labels = str(built_project / "seeds" / "churn_labels.csv")
    for both_or_neither in ([labels, "--labels-table", "churn_labels"], []):
        assert train_set(*both_or_neither, *common) == (
            2, "Error: give a label file (LABELS) or --labels-table, not both or neither\n")
    assert list(tmp_path.iterdir()) == []
