"""The two baselines bench/train_set.py times against `featurekit train-set`: the same
point-in-time join written by hand as raw DuckDB SQL, and as pandas.merge_asof.

Each runs in its own process, like the CLI, and takes the case file train_set.py writes:
    python bench/train_set_baselines.py duckdb|duckdb-2gb|pandas|postgres|spark|spark-asof CASE.json OUTPUT.parquet

Both write what featurekit writes: the label columns in label order, then per view its
features and <view>__feature_ts, for the latest row strictly before the label time.
Imports stay inside each function so that neither pays for the other's libraries.
"""

from __future__ import annotations

import json
import sys


def raw_duckdb(case: dict, output: str, memory_limit: str | None = None) -> None:
    import duckdb

    con = duckdb.connect(case["warehouse"], read_only=True)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    key, ts = case["key"], case["timestamp_column"]
    columns = [f"l.{c}" for c in case["label_columns"]]
    joins = []
    for i, view in enumerate(case["views"]):
        columns += [f"v{i}.{f}" for f in view["features"]]
        columns.append(f"v{i}.{view['timestamp']} AS {view['ref']}__feature_ts")
        joins.append(
            f"ASOF LEFT JOIN {view['table']} AS v{i} "
            f"ON l.{key} = v{i}.{key} AND l.{ts} > v{i}.{view['timestamp']}"
        )
    con.execute(
        f"""COPY (
            SELECT {', '.join(columns)}
            FROM read_parquet('{case['labels']}', file_row_number = true) AS l
            {' '.join(joins)}
            ORDER BY l.file_row_number
        ) TO '{output}' (FORMAT parquet)"""
    )


def postgres(case: dict, output: str) -> None:
    """A hand-written PostgreSQL query (bench/train_set_postgres.py), its rows streamed out by
    COPY and written as Parquet with the columns' types."""
    import os
    import tempfile

    import duckdb
    import psycopg2

    connection = psycopg2.connect(case["dsn"])
    handle, csv = tempfile.mkstemp(suffix=".csv")
    try:
        with connection.cursor() as cursor, os.fdopen(handle, "w") as f:
            cursor.execute(case["session"])
            cursor.copy_expert(f"COPY ({case['sql']}) TO STDOUT WITH (FORMAT csv)", f, size=1 << 20)
        columns = ", ".join(f"'{name}': '{sql_type}'" for name, sql_type in case["types"].items())
        duckdb.connect().execute(
            f"COPY (SELECT * FROM read_csv('{csv}', columns = {{{columns}}}, header = false, auto_detect = false)) "
            f"TO '{output}' (FORMAT parquet)"
        )
    finally:
        connection.close()
        os.unlink(csv)


def spark(case: dict, output: str, asof: bool = False) -> None:
    """A hand-written Spark join (bench/train_set_spark.py), written by Spark's Parquet writer
    and made one file in label order by DuckDB. Per view, as Feast's Spark offline store
    does: every earlier row of the label's key, numbered by feature_ts descending, the first
    kept; or (asof) Spark's LEFT ASOF JOIN, strictly before."""
    import os
    import shutil
    import tempfile

    os.environ["TZ"] = "UTC"  # PySpark reads naive timestamps in the process's zone
    import duckdb
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for name, value in case["spark_conf"].items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.join.asofJoin.enabled", str(asof).lower())
    spark_labels(session, case)
    directory = tempfile.mkdtemp(prefix="bench-spark-")
    try:
        session.sql(spark_sql(case, asof)).write.mode("overwrite").parquet(directory + "/out")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY (SELECT * EXCLUDE (__row) FROM read_parquet('{directory}/out/*.parquet') ORDER BY __row) "
                    f"TO '{output}' (FORMAT parquet)")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def spark_labels(session, case: dict) -> None:
    """The labels as temp view `labels`, numbered (__row) in file order."""
    key, ts = case["key"], case["timestamp_column"]
    session.read.parquet(case["labels"]).selectExpr(
        "monotonically_increasing_id() as __row", f"{key}", f"cast({ts} as timestamp) as {ts}",
        *[c for c in case["label_columns"] if c not in (key, ts)]).createOrReplaceTempView("labels")


def spark_sql(case: dict, asof: bool) -> str:
    """The hand-written Spark join of `labels` (spark_labels): row_number per label, or ASOF."""
    key, ts = case["key"], case["timestamp_column"]
    columns, joins = [f"l.{c}" for c in case["label_columns"]], []
    for i, view in enumerate(case["views"]):
        columns += [f"v{i}.{f}" for f in view["features"]] + [f"v{i}.{view['timestamp']} AS {view['ref']}__feature_ts"]
        if asof:
            joins.append(f"LEFT ASOF JOIN {view['table']} AS v{i} MATCH_CONDITION (l.{ts} > v{i}.{view['timestamp']}) "
                         f"ON l.{key} = v{i}.{key}")
            continue
        picked = ", ".join([*view["features"], view["timestamp"]])
        joins.append(
            f"LEFT JOIN (SELECT * FROM (SELECT l.__row, {', '.join('v.' + c for c in picked.split(', '))}, "
            f"row_number() OVER (PARTITION BY l.__row ORDER BY v.{view['timestamp']} DESC) AS rn "
            f"FROM labels AS l JOIN {view['table']} AS v ON l.{key} = v.{key} AND v.{view['timestamp']} < l.{ts}) "
            f"WHERE rn = 1) AS v{i} ON v{i}.__row = l.__row")
    return f"SELECT l.__row, {', '.join(columns)} FROM labels AS l {' '.join(joins)}"


def pandas_merge_asof(case: dict, output: str) -> None:
    import numpy as np
    import pandas as pd

    key, ts = case["key"], case["timestamp_column"]
    labels = pd.read_parquet(case["labels"])
    labels["__row"] = np.arange(len(labels))
    joined = labels.sort_values(ts, kind="stable")
    columns = list(case["label_columns"])
    for view in case["views"]:
        feature_ts = f"{view['ref']}__feature_ts"
        rows = pd.read_parquet(view["parquet"], columns=[key, view["timestamp"], *view["features"]])
        rows = rows.rename(columns={view["timestamp"]: feature_ts}).sort_values(feature_ts, kind="stable")
        joined = pd.merge_asof(
            joined, rows, left_on=ts, right_on=feature_ts, by=key, allow_exact_matches=False, direction="backward"
        )
        columns += [*view["features"], feature_ts]
    joined.sort_values("__row")[columns].to_parquet(output, index=False)


if __name__ == "__main__":
    method, case_path, output = sys.argv[1:]
    run = {
        "duckdb": raw_duckdb,
        "duckdb-2gb": lambda case, output: raw_duckdb(case, output, memory_limit="2GB"),  # featurekit's default
        "pandas": pandas_merge_asof,
        "postgres": postgres,
        "spark": spark,
        "spark-asof": lambda case, output: spark(case, output, asof=True),
    }[method]
    with open(case_path) as f:
        run(json.load(f), output)
