"""The example shop on Apache Spark (dbt-spark, `method: session`, plain Parquet tables), in
the one local Spark of the run: every node and dbt test builds; the feature views and
training models equal DuckDB's value for value; an incremental run equals a build from
scratch; `--full-refresh` keeps the history; `featurekit train-set` runs its join in Spark
and writes what it writes on DuckDB; `publish` fills the same snapshot; the join matches the
brute-force oracle."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from dbt.cli.main import dbtRunner

import parity_paths as paths
import test_point_in_time_oracle as oracle
from conftest import copy_project, featurekit_cli
from featurekit.cli import main
from featurekit.macros import MacroRenderer
from featurekit.training import with_join_plans
from test_dbt_project import FEATURE_VIEWS, NEW_ROWS, rewrite_seed, table as duckdb_table
from test_parity import SKEWED
from test_postgres import snapshot_tables

pytestmark = pytest.mark.slow

TRAINING_MODELS = ["churn_model_training", "churn_model_v2_training"]
ASOF = "spark.sql.join.asofJoin.enabled"
COALESCE = "spark.sql.adaptive.coalescePartitions.enabled"
VIEWS_ONLY = ["--select", "+path:models/features", "--resource-type", "seed", "--resource-type", "model"]


def spark_dbt(project: Path, schema: str, *args: str, settings: dict | None = None) -> list:
    """Runs dbt in this process on the local Spark (schema = a Spark database of its own, and
    Spark `settings` as the profile's server_side_parameters); returns dbt's results, failing
    the test on any error."""
    (project / "profiles.yml").write_text(
        "shop:\n  target: spark\n  outputs:\n    spark:\n"
        f"      type: spark\n      method: session\n      host: local\n      schema: {schema}\n      threads: 2\n"
        + (f"      server_side_parameters: {json.dumps(settings)}\n" if settings else "")
    )
    outcome = dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project)])
    failed = [f"{r.node.unique_id}: {r.status} {r.message}" for r in (outcome.result or [])
              if str(r.status) not in ("success", "pass", "no-op")]
    assert outcome.success and not failed, outcome.exception or "\n".join(failed)
    return list(outcome.result)


def spark_table(spark, name: str) -> list[tuple]:
    """Every row of a Spark table, sorted as test_dbt_project.table sorts DuckDB's."""
    return sorted((tuple(row) for row in spark.table(name).collect()), key=repr)


def same_values(left: list[tuple], right: list[tuple]) -> list[str]:
    """Differences between two sorted tables, floats to 12 significant digits (sums of
    doubles in another order differ in the last bits)."""
    def norm(value):
        return float(f"{value:.12g}") if isinstance(value, float) and not math.isnan(value) else value

    if len(left) != len(right):
        return [f"{len(left)} rows against {len(right)}"]
    return [f"{a} != {b}" for a, b in zip(left, right) if tuple(map(norm, a)) != tuple(map(norm, b))][:5]


@pytest.fixture(scope="module")
def spark_shop(spark, tmp_path_factory):
    """The example shop built on Spark with `dbt build` (schema shop_spark), ASOF turned on
    by the profile as README tells users: the training models take Spark's ASOF join."""
    project = copy_project(tmp_path_factory.mktemp("spark_shop") / "project")
    results = spark_dbt(project, "shop_spark", "build", settings={ASOF: "true"})
    return project, results


def test_every_node_and_dbt_test_builds_on_spark(spark_shop):
    project, results = spark_shop
    kinds = [r.node.resource_type for r in results]
    assert len(results) == 69, kinds
    assert (kinds.count("seed"), kinds.count("model"), kinds.count("test")) == (5, 25, 37)
    for name in TRAINING_MODELS:
        run = (project / "target" / "run" / "shop" / "models" / "training" / f"{name}.sql").read_text()
        assert "left asof join" in run and "__fk_carried_" not in run, name


@pytest.mark.parametrize("name", FEATURE_VIEWS + TRAINING_MODELS)
def test_spark_equals_duckdb(spark, spark_shop, built_project, name):
    assert same_values(spark_table(spark, f"shop_spark.{name}"), duckdb_table(built_project, name)) == []


def test_incremental_run_equals_build_from_scratch_and_full_refresh_keeps_history(spark, spark_shop, tmp_path):
    built, _ = spark_shop
    incremental = copy_project(tmp_path / "incremental")
    scratch = copy_project(tmp_path / "scratch")
    spark_dbt(incremental, "shop_incremental", "build", *VIEWS_ONLY)
    for project in (incremental, scratch):
        for name, rows in NEW_ROWS.items():
            rewrite_seed(project, name, extra=rows)

    spark_dbt(incremental, "shop_incremental", "build", *VIEWS_ONLY)
    spark_dbt(scratch, "shop_scratch", "build", *VIEWS_ONLY)

    runs = {view: (incremental / "target" / "run" / "shop" / "models" / "features" / f"{view}.sql").read_text()
            for view in FEATURE_VIEWS}
    # a late order recomputes window rows already in the history (rewritten through a copy);
    # new customers' profile rows replace nothing (appended)
    assert "drop table shop_incremental.customer_orders_v1__fk_rewrite" in runs["customer_orders_v1"]
    assert "insert into table shop_incremental.customer_profile_v1" in runs["customer_profile_v1"]
    for view in FEATURE_VIEWS:
        assert same_values(spark_table(spark, f"shop_incremental.{view}"), spark_table(spark, f"shop_scratch.{view}")) == [], view

    before = {view: spark_table(spark, f"shop_incremental.{view}") for view in FEATURE_VIEWS}
    # The source forgets everything before April (e.g. a retention policy on raw data).
    for name, column in [("raw_orders", "order_ts"), ("raw_logins", "login_ts"), ("raw_support_tickets", "opened_ts")]:
        rewrite_seed(incremental, name, keep=lambda row: row[column] >= "2024-04-01")
    spark_dbt(incremental, "shop_incremental", "build", "--full-refresh", *VIEWS_ONLY)

    assert spark.sql("select count(*) from shop_incremental.stg_orders where order_ts < '2024-04-01'").first()[0] == 0
    for view in FEATURE_VIEWS:
        assert spark_table(spark, f"shop_incremental.{view}") == before[view], view


@pytest.mark.parametrize("feature_set", ["churn_model", "churn_model_v2"])
def test_train_set_on_spark_equals_duckdb(spark_shop, built_project, tmp_path, feature_set):
    """The same labels through the real CLI: the join runs in Spark (labels uploaded as a
    Parquet file Spark reads), and the file written equals DuckDB's, every row and column."""
    project, _ = spark_shop
    labels = str(built_project / "seeds" / "churn_labels.csv")
    on_spark, on_duckdb = tmp_path / "spark.parquet", tmp_path / "duckdb.parquet"
    result = CliRunner().invoke(main, ["train-set", labels, "--feature-set", feature_set, "-o", str(on_spark),
                                       "--project-dir", str(project), "-q"])
    assert result.exit_code == 0, result.output
    featurekit_cli("train-set", labels, "--feature-set", feature_set, "-o", str(on_duckdb), "-q", "--project-dir", str(built_project))

    spark_frame, duckdb_frame = pq.read_table(on_spark), pq.read_table(on_duckdb)
    # names and types (Parquet's not-null flags follow each engine's own inference)
    assert [(f.name, f.type) for f in spark_frame.schema] == [(f.name, f.type) for f in duckdb_frame.schema]
    rows = [tuple(row.values()) for row in spark_frame.to_pylist()]
    assert len(rows) == 3633 + 2690
    assert same_values(rows, [tuple(row.values()) for row in duckdb_frame.to_pylist()]) == []


def test_a_labels_table_in_spark_gives_the_rows_of_the_label_file(spark_shop, built_project, tmp_path):
    """--labels-table: the seed's rows joined where they are, in Spark (no label file, no
    upload): the rows the seed's file gives on DuckDB, every value."""
    project, _ = spark_shop
    on_spark, on_duckdb = tmp_path / "spark.parquet", tmp_path / "duckdb.parquet"
    result = CliRunner().invoke(main, ["train-set", "--labels-table", "churn_labels", "--feature-set", "churn_model",
                                       "-o", str(on_spark), "--project-dir", str(project), "-q"])
    assert result.exit_code == 0, result.output
    featurekit_cli("train-set", str(built_project / "seeds" / "churn_labels.csv"), "--feature-set", "churn_model",
                   "-o", str(on_duckdb), "-q", "--project-dir", str(built_project))
    spark_frame, duckdb_frame = pq.read_table(on_spark), pq.read_table(on_duckdb)
    assert spark_frame.schema.names == duckdb_frame.schema.names
    rows = [tuple(row.values()) for row in spark_frame.to_pylist()]
    assert [(r[1], r[0]) for r in rows] == sorted((r[1], r[0]) for r in rows)  # label time and key order
    assert same_values(sorted(rows, key=repr), sorted((tuple(r.values()) for r in duckdb_frame.to_pylist()), key=repr)) == []


def test_a_directory_output_is_written_by_spark_as_duckdb_writes_the_file(spark, spark_shop, built_project, tmp_path):
    """-o DIR/ on Spark: Spark's own writer fills the directory (part files, rows in label
    order across them), from a label file (every label column uploaded: here a zoned label
    time and a naive one) and then, replacing that output, from a labels table; each equals
    the single file DuckDB writes for the same labels, row for row, names and types. A
    directory that is not a train-set output is refused and left as it was."""
    project, _ = spark_shop
    labels = tmp_path / "labels.csv"
    seed = pd.read_csv(built_project / "seeds" / "churn_labels.csv")
    seed.assign(label_ts=seed["label_ts"].str.replace(" ", "T") + "+02:00", seen_at=seed["label_ts"]).to_csv(labels, index=False)
    output = tmp_path / "train"

    def spark_train_set(*source: str) -> dict:
        result = CliRunner().invoke(main, ["train-set", *source, "--feature-set", "churn_model", "-o", f"{output}/",
                                           "--project-dir", str(project), "-q"])
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / "train.featureset.json").read_text())

    for source in ([str(labels)], ["--labels-table", "churn_labels"]):
        # Spark's adaptive plan would make these few rows one partition: off, the sort's 4
        # range partitions show the order holding across part files
        spark.conf.set(COALESCE, "false")
        try:
            sidecar = spark_train_set(*source)
        finally:
            spark.conf.unset(COALESCE)
        on_duckdb = tmp_path / "duckdb.parquet"
        featurekit_cli("train-set", *source, "--feature-set", "churn_model", "-o", str(on_duckdb), "-q",
                       "--project-dir", str(built_project))
        files = sorted(p.name for p in output.iterdir())
        assert len(files) > 1 and all(f.startswith("part-") and f.endswith(".parquet") for f in files), files
        assert sidecar["output"] == {"path": str(output), "rows": 6323, "format": "parquet-directory", "files": files}
        spark_frame, duckdb_frame = pq.read_table(output), pq.read_table(on_duckdb)  # part files in name order
        assert [(f.name, f.type) for f in spark_frame.schema] == [(f.name, f.type) for f in duckdb_frame.schema]
        assert same_values([tuple(r.values()) for r in spark_frame.to_pylist()],
                           [tuple(r.values()) for r in duckdb_frame.to_pylist()]) == []
    assert str(spark_frame.schema.field("label_ts").type) == "timestamp[us]"  # the table's: naive
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    (output / "notes.txt").write_text("mine")
    (tmp_path / "train.featureset.json").unlink()
    result = CliRunner().invoke(main, ["train-set", "--labels-table", "churn_labels", "--feature-set", "churn_model",
                                       "-o", str(output), "--project-dir", str(project), "-q"])
    assert result.exit_code == 2 and "is a directory that is not a train-set output" in result.stderr
    assert (output / "notes.txt").read_text() == "mine" and len(list(output.iterdir())) == len(files) + 1


# ---------------------------------------------------------------------------------------------
# The join in Spark against the brute-force oracle (tests/test_point_in_time_oracle.py's cases:
# ties, nulls, missing keys, labels before the first row, duplicate labels, composite and
# text keys, availability times, ttl, request-time features and fills). Fewer cases than
# DuckDB's: each is a Spark query of about a second.

SPARK_TYPES = {"BIGINT": "bigint", "VARCHAR": "string", "DOUBLE": "double", "BOOLEAN": "boolean", "TIMESTAMP": "timestamp_ntz"}
LABEL_TYPES = {"rid": "BIGINT", "k1": "BIGINT", "k2": "VARCHAR", "label_ts": "TIMESTAMP", "target": "BIGINT"}


def spark_case_matches_oracle(spark, renderer, case) -> list[str]:
    # Spark has no zoned timestamp type: a zoned label time arrives as its UTC instant, as
    # train-set uploads it
    case = dataclasses.replace(case, zoned=False, labels=[
        dict(label, label_ts=label["label_ts"] and oracle.utc_naive(label["label_ts"])) for label in case.labels])
    tables = {**{ref: (columns, case.rows[ref]) for ref, columns in oracle.TABLES.items()}, "labels": (LABEL_TYPES, case.labels)}
    for name, (columns, rows) in tables.items():
        schema = ", ".join(f"{column} {SPARK_TYPES[kind]}" for column, kind in columns.items())
        frame = spark.createDataFrame([tuple(row[column] for column in columns) for row in rows], schema)
        # written as naive times, read as Spark's TIMESTAMP at the session's zone, UTC
        frame.selectExpr(*[f"cast({c} as timestamp) as {c}" if kind == "TIMESTAMP" else c for c, kind in columns.items()]) \
            .createOrReplaceTempView(name)
    # the plan as train-set and a training model choose it: the session's setting, asked once
    case = dataclasses.replace(case, specs=with_join_plans(lambda sql: spark.sql(sql).collect(), renderer, case.specs))
    sql = oracle.case_join(renderer, case)
    asof = spark.conf.get(ASOF) == "true"
    assert [v["asof_join"] for v in case.specs] == [asof] * len(case.specs) and ("asof join" in sql) == asof
    result = spark.sql(sql)
    return oracle.check_case(case, result.columns, [tuple(row) for row in result.collect()])


@pytest.mark.parametrize("asof", [False, True], ids=["sorted", "asof"])
def test_spark_join_matches_oracle(spark, built_project, asof):
    """Both Spark plans: the sorted pass, and Spark's ASOF join where the session allows it."""
    manifest = json.loads((built_project / "target" / "manifest.json").read_text())
    renderer = MacroRenderer(manifest, "spark")
    before = spark.conf.get(ASOF)
    spark.conf.set(ASOF, str(asof).lower())
    failures = {}
    try:
        for seed in range(40):
            problems = spark_case_matches_oracle(spark, renderer, oracle.draw_case(oracle.SeededDraw(seed)))
            if problems:
                failures[seed] = problems[:5]
    finally:
        spark.conf.set(ASOF, before)
    assert failures == {}


@pytest.mark.parametrize("as_of", [None, "2024-07-01T00:00:00Z"], ids=["dbt-built", "as-of"])
def test_published_snapshots_equal_duckdb(spark_shop, built_project, tmp_path, as_of):
    """publish reads the online tables (or the views, --as-of) from Spark into the same
    embedded snapshot it fills from DuckDB: the same tables, rows and records."""
    project, _ = spark_shop
    args = ["--as-of", as_of] if as_of else []
    result = CliRunner().invoke(main, ["publish", "--project-dir", str(project), "--online-dir", str(tmp_path / "spark"), "-q", *args])
    assert result.exit_code == 0, result.output
    featurekit_cli("publish", "--project-dir", str(built_project), "--online-dir", str(tmp_path / "duckdb"), "-q", *args)
    (spark_tables, spark_manifest), (duck_tables, duck_manifest) = (snapshot_tables(tmp_path / e) for e in ("spark", "duckdb"))
    assert sorted(spark_tables) == sorted(duck_tables)
    for ref, (columns, rows) in duck_tables.items():
        assert spark_tables[ref][0] == columns, ref
        assert len(rows) > 0 and same_values(spark_tables[ref][1], rows) == [], ref
    for ref, record in duck_manifest["views"].items():
        def same(r):
            return {k: v for k, v in r.items() if k not in ("as_of", "relation")}
        assert same(spark_manifest["views"][ref]) == same(record), ref


def test_monitoring_and_lock_on_spark(spark_shop):
    project, _ = spark_shop

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--project-dir", str(project)])
        assert result.exit_code == 0, result.output
        return result.stdout

    report = json.loads(cli("freshness", "--now", "2024-11-01T00:00:00Z", "--json"))
    assert report["status"] == "ok"
    assert all(r["warehouse"]["newest_feature_ts"] for r in report["views"])
    assert "customer_orders_v1" in cli("describe", "customer_orders_v1")
    cli("lock")
    assert "9 released version(s) unchanged" in cli("check")


def cli_json(project: Path, *args: str, code: int) -> dict:
    """A featurekit command run in this process (Spark's metastore is this process's), its
    --json report."""
    result = CliRunner().invoke(main, [*args, "--json", "--project-dir", str(project)])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def rounded(value):
    """A report with its floats to 10 significant digits (sums of doubles summed in
    another order by Spark and DuckDB differ in the last bits)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return float(f"{value:.10g}") if isinstance(value, float) else value


def test_parity_on_spark_replays_as_duckdb(spark_shop, built_project, tmp_path):
    """`featurekit parity` replays the log through the join in Spark (customer_profile's
    availability column looked up there too): vectors the Spark shop served match it
    exactly, and a skewed log gets the report DuckDB gives, column for column."""
    project, _ = spark_shop
    lookups = paths.requests(built_project, 300, seed=7)
    online = ["--online-dir", str(tmp_path / "online")]  # no snapshot: both judge by served_at
    correct = paths.write_log(paths.correct_vectors(project, lookups), tmp_path / "correct")
    [replay] = cli_json(project, "parity", str(correct), *online, "-q", code=0)["feature_sets"]
    assert replay["rows"] == len(lookups) and all(e["excluded"] == 0 for e in replay["exclusions"])
    assert all(c["compared"] == c["matches"] == len(lookups) for c in replay["columns"]), replay["columns"]

    skewed = paths.write_log(paths.skewed_vectors(built_project, lookups), tmp_path / "skewed")
    on_spark = cli_json(project, "parity", str(skewed), *online, "-q", code=1)
    on_duckdb = cli_json(built_project, "parity", str(skewed), *online, "-q", code=1)
    assert sorted(on_spark["failing"]) == sorted(on_duckdb["failing"]) == sorted(f"{paths.FEATURE_SET}.{c}" for c in SKEWED)
    [spark_set], [duckdb_set] = on_spark["feature_sets"], on_duckdb["feature_sets"]
    # order_value_30d: DuckDB's sums served, Spark's replayed, so some differ in the last bits
    assert [rounded(c) for c in spark_set["columns"] if c["column"] != "order_value_30d"] == \
        [rounded(c) for c in duckdb_set["columns"] if c["column"] != "order_value_30d"]
    assert spark_set["exclusions"] == duckdb_set["exclusions"]


def test_skew_of_a_spark_training_set_equals_duckdb(spark_shop, built_project, tmp_path):
    """`featurekit skew` of the training set train-set writes on Spark: against a served log,
    the report DuckDB's training set gets; against the online store published from Spark as
    of the label time, the same vectors (PSI 0)."""
    project, _ = spark_shop
    at = "2024-09-01 09:00:00"
    labels = pd.read_csv(built_project / "seeds" / "churn_labels.csv")
    labels[labels["label_ts"] == at].drop_duplicates("customer_id").to_csv(tmp_path / "labels.csv", index=False)
    trains = {}
    for engine, root in (("spark", project), ("duckdb", built_project)):
        trains[engine] = tmp_path / f"{engine}.parquet"
        result = CliRunner().invoke(main, ["train-set", str(tmp_path / "labels.csv"), "--feature-set", paths.FEATURE_SET,
                                           "-o", str(trains[engine]), "-q", "--project-dir", str(root)])
        assert result.exit_code == 0, result.output
    log = paths.write_log(paths.skewed_vectors(built_project, paths.requests(built_project, 500, seed=3)), tmp_path / "log")
    reports = {}
    for engine, train in trains.items():
        result = CliRunner().invoke(main, ["skew", str(train), "--against", str(log), "--json"])
        assert result.exit_code == 1, result.output
        reports[engine] = rounded({k: v for k, v in json.loads(result.stdout).items() if k != "train"})
    assert reports["spark"] == reports["duckdb"] and "orders_30d" in reports["spark"]["flagged"]

    online = str(tmp_path / "online")
    result = CliRunner().invoke(main, ["publish", "--as-of", at.replace(" ", "T") + "Z", "-q", "--online-dir", online,
                                       "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["skew", str(trains["spark"]), "--against", "online", "--online-dir", online,
                                       "--request-ts", at.replace(" ", "T") + "Z", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"]["served"] == report["rows"]["train"] > 0
    assert all(f["psi"] == pytest.approx(0, abs=1e-12) for f in report["features"]), report["features"]
