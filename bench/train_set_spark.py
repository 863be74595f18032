"""`python bench/train_set.py --engine spark`: featurekit's train-set on Apache Spark against
the point-in-time join people write by hand there, in the same run, with featurekit on DuckDB
beside them.

The same generated data as the DuckDB bench (train_set.py), three views, built into plain
Parquet tables of a local Spark (dbt-spark, `method: session`: the Spark of the process, local[2],
the metastore in an embedded Derby database beside the data) by a small dbt project. Then,
each in a fresh process, process and JVM start included, every run writing the same Parquet:
  featurekit (Spark)   `python -m featurekit train-set` on the Spark target (labels checked
                       locally, keys and times up as a Parquet file, spark__view_join, rows out
                       through Spark's Parquet writer, the label columns joined back by DuckDB);
                       its session turns Spark's ASOF join on, so spark__view_join takes it
  featurekit (Spark, sorted pass)  the same under a profile that turns ASOF off
                       (server_side_parameters): spark__view_join's sorted pass
  Spark row_number     the join as Feast's Spark offline store writes it: per view, labels
                       joined to the view's rows on key and feature_ts < label_ts, row_number()
                       over each label's matches by feature_ts descending, rn = 1 kept, then
                       left-joined to the labels (train_set_baselines.py spark)
  Spark ASOF           Spark 4.3's LEFT ASOF JOIN ... MATCH_CONDITION (label_ts > feature_ts),
                       one per view, under spark.sql.join.asofJoin.enabled (spark-asof)
  featurekit (DuckDB)  train-set on the DuckDB bench project of train_set.py
The hand-written ones read labels.parquet in Spark and write Spark's Parquet, which DuckDB
turns into one file in label order, as featurekit does. CPU is the process's and every
descendant's (the JVM); peak RSS is the Python process's and the JVM's, each its own
high-water mark. In local mode the JVM is the driver and the executors at once: on a
cluster the executors' share of it leaves the driver.

--label-sizes N,M adds featurekit (Spark) per label count, three ways: a label file into one
file, a label file into a directory (`-o DIR/`), and a labels table in Spark into a
directory; --label-sizes-only runs those alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _common import format_table, mib, run_measured_tree, summarize, use_featurekit

BENCH = Path(__file__).resolve().parent
SCHEMA = "bench_spark"
FEATURE_SET = "bench_three_views"
LABEL_COLUMNS = ["customer_id", "label_ts", "churned"]


def spark_conf(spark_dir: Path) -> dict[str, str]:
    """The session every process of the bench opens (featurekit's through the profile's
    server_side_parameters, as dbt-spark does)."""
    return {
        "spark.master": "local[2]",
        "spark.driver.memory": "3g",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(spark_dir / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={spark_dir / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={spark_dir} -Dderby.stream.error.file={spark_dir / 'derby.log'}",
    }


def profile(spark_dir: Path, **settings: str) -> str:
    """The bench project's dbt-spark profile, with extra Spark settings."""
    target = {"type": "spark", "method": "session", "host": "local", "schema": SCHEMA, "threads": 1,
              "server_side_parameters": {**spark_conf(spark_dir), **settings}}
    return "bench:\n  target: spark\n  outputs:\n    spark: " + json.dumps(target) + "\n"


def project_files(duckdb_files: dict[str, str], data_dir: Path, spark_dir: Path, views: dict) -> dict[str, str]:
    """The Spark bench project: train_set.py's feature YAML and feature sets, its views in
    Spark SQL (the latest load of each restated row) and a dbt-spark profile."""
    files = {name: text for name, text in duckdb_files.items() if name.endswith(".yml") and name.startswith("models/")}
    files["dbt_project.yml"] = ("name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
                                "models:\n  bench:\n    +materialized: table\n    +file_format: parquet\n")
    files["profiles.yml"] = profile(spark_dir)
    for name, features in views.items():
        files[f"models/{name}_v1.sql"] = (
            f"select customer_id, cast(feature_ts as timestamp) as feature_ts, {', '.join(features)}, loaded_at\n"
            "from (\n    select *, row_number() over (partition by customer_id, feature_ts order by loaded_at desc) as rn\n"
            f"    from parquet.`{data_dir / name}.parquet`\n) as restated\nwhere rn = 1\n"
        )
    return files


def prepare_spark(out: Path, duckdb_files: dict[str, str], views: dict, digest) -> Path:
    """The Spark bench project built (dbt run) on the generated data, again only when its
    files change. Returns the project directory."""
    data_dir, project, spark_dir = out / "data", out / "project_spark", out / "spark"
    files = project_files(duckdb_files, data_dir, spark_dir, views)
    stamp = out / "prepared_spark.json"
    key = digest(json.loads((out / "prepared.json").read_text())["data"], files)
    if stamp.is_file() and json.loads(stamp.read_text()).get("build") == key:
        use_featurekit(project)  # the working tree's macros, as train_set.prepare vendors them
        run_measured_tree([sys.executable, "-m", "featurekit", "dbt", "parse", "--project-dir", str(project)])
        return project
    print(f"building the Spark bench project {project} (dbt run on a local Spark)", flush=True)
    for directory in (project, spark_dir):
        shutil.rmtree(directory, ignore_errors=True)
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    use_featurekit(project)
    run_measured_tree([sys.executable, "-m", "featurekit", "dbt", "run", "--project-dir", str(project)])
    stamp.write_text(json.dumps({"build": key}))
    return project


def case_file(out: Path, project: Path, views: dict, labels: Path, name: str) -> Path:
    """What the hand-written Spark baselines read (train_set_baselines.py)."""
    path = out / "results_spark" / f"{name}.json"
    path.write_text(json.dumps({
        "spark_conf": spark_conf(out / "spark"), "labels": str(labels), "key": "customer_id",
        "timestamp_column": "label_ts", "label_columns": LABEL_COLUMNS,
        "views": [{"ref": f"{v}_v1", "table": f"{SCHEMA}.{v}_v1", "timestamp": "feature_ts", "features": f}
                  for v, f in views.items()],
    }))
    return path


def main(args, prepare, project_files_of, disagreements, scales, views, digest) -> int:
    scale = scales[args.scale]
    runs = args.runs or scale["runs"]
    out = args.out.resolve() / f"train_set_{args.scale}"
    duck_project = prepare(out, args.scale, args.rebuild)
    (out / "results_spark").mkdir(exist_ok=True)
    project = prepare_spark(out, project_files_of(out / "data"), views, digest)
    labels = out / "data" / "labels.parquet"

    def train_set(target: Path, output, *options: str, source: list[str] | None = None) -> list[str]:
        """The command; `source` the labels' arguments (default: labels.parquet)."""
        return [sys.executable, "-m", "featurekit", "train-set", *(source or [str(labels)]), "--feature-set", FEATURE_SET,
                "-o", str(output), "-q", "--project-dir", str(target), *options]

    load = os.getloadavg()[0]
    rows, problems = ([], []) if args.label_sizes_only else method_rows(out, project, duck_project, views, train_set, runs,
                                                                         disagreements)
    if args.label_sizes:
        size_rows, size_problems = label_size_rows(args.label_sizes, out, project, train_set, scale, disagreements, runs)
        rows, problems = rows + size_rows, problems + size_problems
    print(f"\ntrain-set on Spark (local[2], pyspark {_pyspark_version()}), scale {args.scale}, three views: "
          f"{scale['labels']:,} labels, {scale['rows']:,} rows per view ({scale['keys']:,} keys); {os.cpu_count()} cores, "
          f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}; median of {runs} runs, each in a fresh process "
          "(JVM start included); CPU of the process and its JVM")
    print(format_table(["method", "runs", "wall", "CPU", "Python peak RSS", "JVM peak RSS", "row_number wall / wall",
                        "row_number CPU / CPU"], rows))
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("values: " + ("every method equal to featurekit's, row for row" if not problems else "MISMATCHES above"))
    return 1 if problems else 0


def method_rows(out: Path, project: Path, duck_project: Path, views: dict, train_set, runs: int, disagreements):
    """featurekit on Spark and DuckDB and the hand-written Spark joins, `runs` times each,
    interleaved: (table rows, disagreements with featurekit (Spark)'s output)."""
    labels, results = out / "data" / "labels.parquet", out / "results_spark"
    baselines = str(BENCH / "train_set_baselines.py")
    sorted_profile = out / "profile_sorted"
    sorted_profile.mkdir(exist_ok=True)
    (sorted_profile / "profiles.yml").write_text(profile(out / "spark", **{"spark.sql.join.asofJoin.enabled": "false"}))
    case = case_file(out, project, views, labels, "three_views")
    outputs = {name: results / f"{name.split(' (')[0].replace(' ', '_')}_{i}.parquet" for i, name in enumerate(
        ["featurekit (Spark)", "featurekit (Spark, sorted pass)", "Spark row_number", "Spark ASOF", "featurekit (DuckDB)"])}
    methods = {
        "featurekit (Spark)": train_set(project, outputs["featurekit (Spark)"]),
        "featurekit (Spark, sorted pass)": train_set(project, outputs["featurekit (Spark, sorted pass)"],
                                                     "--profiles-dir", str(sorted_profile)),
        "Spark row_number": [sys.executable, baselines, "spark", str(case), str(outputs["Spark row_number"])],
        "Spark ASOF": [sys.executable, baselines, "spark-asof", str(case), str(outputs["Spark ASOF"])],
        "featurekit (DuckDB)": train_set(duck_project, outputs["featurekit (DuckDB)"]),
    }
    measured = {name: [] for name in methods}
    for round_ in range(runs):  # interleaved, so that drift hits every method alike
        for name, command in methods.items():
            print(f"  three views: {name} run {round_ + 1}", flush=True)
            measured[name].append(run_measured_tree(command))
    problems = disagreements({"featurekit": outputs["featurekit (Spark)"],
                              **{k: v for k, v in outputs.items() if k != "featurekit (Spark)"}})

    baseline = summarize(measured["Spark row_number"])
    rows = []
    for name, figures in measured.items():
        run = summarize(figures)
        rows.append([name, len(figures), f"{run.seconds:.2f} s", f"{run.cpu_seconds:.2f} s", mib(run.peak_rss),
                     mib(run.jvm_peak_rss) if run.jvm_peak_rss else "-", f"{baseline.seconds / run.seconds:.2f}x",
                     f"{baseline.cpu_seconds / run.cpu_seconds:.2f}x"])
    return rows, problems


# Makes a Spark table of a label file, in a process of its own (the embedded Derby metastore
# admits one JVM at a time): argv[1] the session's settings (JSON), argv[2] the statement.
_SPARK_SQL = """
import json, sys
from pyspark.sql import SparkSession
builder = SparkSession.builder.enableHiveSupport()
for name, value in json.loads(sys.argv[1]).items():
    builder = builder.config(name, value)
builder.getOrCreate().sql(sys.argv[2])
"""


def label_size_rows(sizes: list[int], out: Path, project: Path, train_set, scale: dict, disagreements, runs: int) -> list[list]:
    """featurekit (Spark) per label count (labels drawn as train_set.py draws them, on the same
    views), `runs` times each, interleaved: its driver memory as labels grow. Three ways: the
    label file into one file (rows read out through DuckDB), the label file into a directory
    (uploaded whole, written by Spark), and a labels table in Spark into a directory (no label
    or joined row in the driver)."""
    from train_set import label_rows

    import pyarrow.parquet as pq

    first = pq.read_table(out / "data" / "activity.parquet")
    results = out / "results_spark"
    methods, outputs = {}, {}
    for size in sizes:
        labels = out / "data" / f"labels_{size}.parquet"
        if not labels.is_file():
            pq.write_table(label_rows(scale["keys"], size, first), labels)
        table = f"{SCHEMA}.labels_{size}"
        subprocess.run([sys.executable, "-c", _SPARK_SQL, json.dumps(spark_conf(out / "spark")),
                        f"CREATE TABLE IF NOT EXISTS {table} USING parquet AS SELECT * FROM parquet.`{labels}`"],
                       check=True, capture_output=True)
        outputs[size] = {"file": results / f"labels_{size}.parquet", "directory": results / f"labels_{size}_dir"}
        methods[f"label file -> one file, {size:,} labels"] = train_set(project, outputs[size]["file"], source=[str(labels)])
        methods[f"label file -> DIR/, {size:,} labels"] = train_set(project, f"{outputs[size]['directory']}/", source=[str(labels)])
        methods[f"labels table -> DIR/, {size:,} labels"] = train_set(project, f"{results}/labels_{size}_table_dir/",
                                                                       source=["--labels-table", table])
    measured = {name: [] for name in methods}
    for round_ in range(runs):
        for name, command in methods.items():
            print(f"  featurekit (Spark), {name}, run {round_ + 1}", flush=True)
            measured[name].append(run_measured_tree(command))
    problems = [f"{size:,} labels: {problem}" for size, paths in outputs.items()  # same labels, same order: same rows
                for problem in disagreements({"featurekit": paths["file"], "directory": paths["directory"]})]
    rows = []
    for name, figures in measured.items():
        run = summarize(figures)
        rows.append([f"featurekit (Spark), {name}", len(figures), f"{run.seconds:.2f} s", f"{run.cpu_seconds:.2f} s",
                     mib(run.peak_rss), mib(run.jvm_peak_rss), "", ""])
    return rows, problems


def _pyspark_version() -> str:
    import pyspark

    return pyspark.__version__
