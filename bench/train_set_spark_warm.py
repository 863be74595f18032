"""`python bench/train_set_spark_warm.py [--scale medium] [--runs 3]`: the Spark joins of
bench/train_set.py --engine spark timed warm, inside one already-started Spark session (as
on a Thrift server or a Databricks cluster, where the session is running before the query).

Run train_set.py --engine spark first (it generates the data and builds the Spark bench
project). Labels are read once and cached; then each method's query, run once untimed and
then `--runs` times, is executed with Spark's `noop` writer (every row computed, none
written): featurekit's join as train-set renders it (point_in_time_join, ASOF plan and
sorted pass), and the hand-written row_number and ASOF joins of train_set_baselines.py.
Only the queries are timed: no process or JVM start, no label upload, no file out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _common import format_table
from train_set_baselines import spark_labels, spark_sql
from train_set_spark import FEATURE_SET, LABEL_COLUMNS, spark_conf

BENCH = Path(__file__).resolve().parent
CASES = {"one view": "bench_one_view", "three views": FEATURE_SET}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    from pyspark.sql import SparkSession

    from featurekit.catalog import resolve
    from featurekit.project import Project

    out = BENCH / "out" / f"train_set_{args.scale}"
    builder = SparkSession.builder.enableHiveSupport()
    for name, value in spark_conf(out / "spark").items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("OFF")
    session.conf.set("spark.sql.join.asofJoin.enabled", "true")  # the hand-written ASOF needs it; featurekit's plan is chosen below
    project = Project(out / "project_spark")
    rows = []
    for case, feature_set in CASES.items():
        views = resolve(project, feature_set=feature_set)["views"]
        spec = json.loads((out / "results_spark" / "three_views.json").read_text())
        spec["views"] = [v for v in spec["views"] if v["ref"] in {view["ref"] for view in views}]
        spark_labels(session, spec)
        session.sql("CACHE TABLE labels")

        def featurekit_join(asof: bool) -> str:
            planned = [dict(view, asof_join=asof, join_index=False) for view in views]
            return project.macros.call("point_in_time_join", "labels", planned, timestamp_column="label_ts",
                                       label_columns=LABEL_COLUMNS, row_column="__row")

        queries = {"featurekit (ASOF plan)": featurekit_join(True), "featurekit (sorted pass)": featurekit_join(False),
                   "Spark row_number": spark_sql(spec, False), "Spark ASOF": spark_sql(spec, True)}
        for name, sql in queries.items():
            seconds = []
            for run in range(args.runs + 1):  # the first run warms the JVM's code and the file cache
                started = time.perf_counter()
                session.sql(sql).write.format("noop").mode("overwrite").save()
                seconds.append(time.perf_counter() - started)
            rows.append([case, name, args.runs, f"{statistics.median(seconds[1:]):.2f} s", f"{min(seconds[1:]):.2f} s"])
            print(f"  {case}: {name} {rows[-1][3]}", flush=True)
        session.sql("UNCACHE TABLE labels")
    print(f"\nwarm joins in one Spark session (local[2]), scale {args.scale}, load average {os.getloadavg()[0]:.1f}; "
          f"median and best of {args.runs} runs after one untimed run, noop writer")
    print(format_table(["case", "method", "runs", "median", "best"], rows, left=2))
    session.stop()


if __name__ == "__main__":
    main()
