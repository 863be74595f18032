"""Benchmark: `featurekit train-set` against the same point-in-time join written by hand.

    python bench/train_set.py --scale tiny|small|medium|large [--engine postgres|spark]

Generates labels and raw feature data (deterministic numpy, about 1% of raw rows restated:
same key and feature_ts, a later loaded_at), builds the feature views with a real `dbt build`
in a small bench project under bench/out/<scale>/ (it uses featurekit's dbt package like a user project; each view
keeps the latest load of a restated row and is stored in key and time order), then times, each in a fresh process and process
start included:
  featurekit   `python -m featurekit train-set LABELS --feature-set ... -o OUT.parquet`
  raw DuckDB   the same join as hand-written ASOF SQL (the baseline; train_set_baselines.py)
  raw DuckDB 2GB  the same SQL under featurekit's default memory limit (2GB), which keeps
               peak RSS within the target; unbounded, DuckDB holds every view's join state
  pandas       the same join with pandas.merge_asof(allow_exact_matches=False, by=key)
for one view and for three views, and prints medians, ratios to raw DuckDB and peak RSS.
All outputs are compared value by value; a mismatch exits 1.

Generated data and the bench project are kept and reused while their inputs are unchanged;
--rebuild makes them again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import Run, bench_project_files, format_table, mib, run_measured, summarize, use_featurekit

from featurekit.dbt_package import PACKAGE_DIR

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GENERATOR_VERSION = 1  # bump when the generated data or bench project changes shape

# labels, entity keys (customers), rows per feature view
SCALES = {
    "tiny": {"labels": 2_000, "keys": 1_000, "rows": 10_000, "runs": 1},
    "small": {"labels": 10_000, "keys": 10_000, "rows": 100_000, "runs": 3},
    "medium": {"labels": 500_000, "keys": 100_000, "rows": 2_000_000, "runs": 3},
    "large": {"labels": 2_000_000, "keys": 1_000_000, "rows": 20_000_000, "runs": 3},
}
# Feature views: name -> its three features (an integer count, an amount, a nullable rate).
VIEWS = {
    "activity": ["events_7d", "amount_7d", "score"],
    "sessions": ["sessions_7d", "minutes_7d", "bounce_rate"],
    "payments": ["payments_30d", "spend_30d", "refund_rate"],
}
# case -> (its feature set in the bench project, its views)
CASES = {"one view": ("bench_one_view", ["activity"]), "three views": ("bench_three_views", list(VIEWS))}
METHODS = ["featurekit", "raw DuckDB", "raw DuckDB 2GB", "pandas"]
# Targets at large scale (2 cores); the raw DuckDB join is the baseline for the overhead.
TARGETS = {"one view": 5.0, "three views": 12.0}
TARGET_RSS = 2.5e9
TARGET_OVERHEAD = 1.0

START = np.datetime64("2024-01-01T00:00:00", "us")
YEAR_S = 366 * 86_400
RESTATED_SHARE = 0.01
MISSING_KEY_SHARE = 0.05  # label keys that no view knows
TIE_SHARE = 0.01  # labels exactly at one of their key's feature_ts
DUPLICATE_SHARE = 0.005  # label rows repeated verbatim


# ---------------------------------------------------------------- data


def raw_view_rows(name: str, index: int, keys: int, rows: int) -> pa.Table:
    """`rows` distinct (customer_id, feature_ts) rows plus about 1% restatements of them: the
    same key and feature_ts loaded later with new values (the view must keep those)."""
    rng = np.random.default_rng([20240101, index, rows])
    # Draw a few extra (key, second) pairs, drop the rare repeats, keep exactly `rows`.
    pairs = np.unique(rng.integers(1, keys + 1, int(rows * 1.01)) * YEAR_S + rng.integers(0, YEAR_S, int(rows * 1.01)))
    pairs = np.sort(rng.choice(pairs, rows, replace=False))
    customer_id = pairs // YEAR_S
    feature_ts = START + (pairs % YEAR_S) * 1_000_000
    loaded_at = feature_ts + rng.integers(60, 6 * 3600, rows) * 1_000_000
    restated = np.sort(rng.choice(rows, int(rows * RESTATED_SHARE), replace=False))
    n = rows + restated.size
    count_name, amount_name, rate_name = VIEWS[name]
    rate = rng.random(n).round(4)
    rate[rng.random(n) < 0.02] = np.nan  # nulls in a feature column
    table = pa.table(
        {
            "customer_id": np.r_[customer_id, customer_id[restated]],
            "feature_ts": np.r_[feature_ts, feature_ts[restated]],
            count_name: rng.poisson(3, n).astype(np.int32),
            amount_name: rng.gamma(2.0, 40.0, n).round(2),
            rate_name: pa.array(rate, from_pandas=True),
            "loaded_at": np.r_[loaded_at, loaded_at[restated] + rng.integers(1, 3 * 86_400, restated.size) * 1_000_000],
        }
    )
    return table.take(np.argsort(table["loaded_at"].to_numpy(), kind="stable"))  # in load order


def label_rows(keys: int, labels: int, first_view: pa.Table) -> pa.Table:
    """Labels with missing keys, labels before a key's first row, ties at a feature_ts and
    duplicate rows."""
    rng = np.random.default_rng([20240101, 99, labels])
    customer_id = rng.integers(1, int(keys * (1 + MISSING_KEY_SHARE)) + 1, labels)
    label_ts = START + rng.integers(0, YEAR_S + 31 * 86_400, labels) * 1_000_000
    ties = rng.choice(labels, int(labels * TIE_SHARE), replace=False)
    source = rng.integers(0, first_view.num_rows, ties.size)
    customer_id[ties] = first_view["customer_id"].to_numpy()[source]
    label_ts[ties] = first_view["feature_ts"].to_numpy()[source]
    copies = rng.choice(labels, int(labels * DUPLICATE_SHARE), replace=False)
    targets = rng.choice(labels, copies.size, replace=False)
    customer_id[targets], label_ts[targets] = customer_id[copies], label_ts[copies]
    return pa.table({"customer_id": customer_id, "label_ts": label_ts, "churned": rng.random(labels) < 0.2})


def generate(data_dir: Path, scale: dict) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    first = None
    for index, name in enumerate(VIEWS):
        print(f"  {name}: {scale['rows']:,} rows + {RESTATED_SHARE:.0%} restated", flush=True)
        table = raw_view_rows(name, index, scale["keys"], scale["rows"])
        pq.write_table(table, data_dir / f"{name}.parquet")
        first = table if first is None else first
    pq.write_table(label_rows(scale["keys"], scale["labels"], first), data_dir / "labels.parquet")


# ---------------------------------------------------------------- the bench dbt project


def project_files(data_dir: Path) -> dict[str, str]:
    """The bench dbt project (besides the macros copied from the repo): one versioned feature
    view per raw table, deduplicating restated rows, and two feature sets."""
    files = {
        **bench_project_files(
            "bench", f"vars:\n  bench_data_dir: {json.dumps(str(data_dir))}\nmodels:\n  bench:\n    +materialized: table\n"
        ),
        "models/feature_sets.yml": (
            "version: 2\nexposures:\n"
            "  - name: bench_one_view\n    type: ml\n    owner: {name: bench}\n"
            "    depends_on: [\"ref('activity', v=1)\"]\n"
            "  - name: bench_three_views\n    type: ml\n    owner: {name: bench}\n"
            f"    depends_on: [{', '.join(json.dumps(f'ref({n!r}, v=1)') for n in VIEWS)}]\n"
        ),
    }
    for name, features in VIEWS.items():
        files[f"models/{name}_v1.sql"] = (
            "-- The raw load restates some rows (same key and feature_ts, a later loaded_at):\n"
            "-- the view keeps the latest load of each. Stored in (key, feature_ts) order: the\n"
            "-- point-in-time join sorts by them, ~30% cheaper when they already are.\n"
            f"select customer_id, feature_ts, {', '.join(features)}, loaded_at\n"
            f"from read_parquet('{{{{ var(\"bench_data_dir\") }}}}/{name}.parquet')\n"
            "qualify row_number() over (partition by customer_id, feature_ts order by loaded_at desc) = 1\n"
            "order by customer_id, feature_ts\n"
        )
        columns = "".join(f"      - name: {c}\n" for c in ["customer_id", "feature_ts", *features])
        files[f"models/{name}.yml"] = (
            f"version: 2\nmodels:\n  - name: {name}\n    latest_version: 1\n"
            "    config:\n      meta:\n        featurekit: {entity: customer, keys: [customer_id], timestamp: feature_ts}\n"
            f"    data_tests: [featurekit.unique_history]\n    columns:\n{columns}    versions:\n      - v: 1\n"
        )
    return files


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _write(project: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)


def _featurekit(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "featurekit", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"featurekit {' '.join(args)} failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")


def prepare(out: Path, scale_name: str, rebuild: bool) -> Path:
    """Generated data and the built bench project for a scale, made again only when their
    inputs change: the data, then the views (dbt build), or only the copied macros (dbt parse,
    seconds instead of minutes at large scale). Returns the project directory."""
    scale = SCALES[scale_name]
    data_dir, project = out / "data", out / "project"
    files = project_files(data_dir)
    package = _digest({str(p.relative_to(PACKAGE_DIR)): p.read_text() for p in sorted(PACKAGE_DIR.rglob("*.*"))})
    data_key = _digest(GENERATOR_VERSION, scale, VIEWS)
    build_key = _digest(data_key, files)
    stamp = out / "prepared.json"
    done = {} if rebuild or not stamp.is_file() else json.loads(stamp.read_text())
    if done.get("data") != data_key:
        print(f"generating {scale_name} data in {data_dir}", flush=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        generate(data_dir, scale)
    if done.get("data") != data_key or done.get("build") != build_key:
        print(f"building the bench project {project} (dbt build)", flush=True)
        shutil.rmtree(project, ignore_errors=True)
        _write(project, files)
        use_featurekit(project)
        _featurekit("dbt", "build", "--project-dir", str(project))
        # pandas reads the built views as Parquet, as a pandas user would have them.
        with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
            for name in VIEWS:
                con.execute(f"COPY {name}_v1 TO '{project / f'{name}_v1.parquet'}' (FORMAT parquet)")
    elif done.get("package") != package:
        print("featurekit's dbt package changed: vendoring it into the bench project again (dbt parse)", flush=True)
        use_featurekit(project)
        _featurekit("dbt", "parse", "--project-dir", str(project))
    stamp.write_text(json.dumps({"data": data_key, "build": build_key, "package": package}))
    return project


# ---------------------------------------------------------------- timing


def commands(project: Path, case: str, results: Path) -> dict[str, tuple[list[str], Path]]:
    """Per method, its command line and its output file."""
    feature_set, names = CASES[case]
    slug = case.replace(" ", "_")
    case_file = results / f"{slug}.json"
    case_file.write_text(
        json.dumps(
            {
                "warehouse": str(project / "warehouse.duckdb"),
                "labels": str(project.parent / "data" / "labels.parquet"),
                "key": "customer_id",
                "timestamp_column": "label_ts",
                "label_columns": ["customer_id", "label_ts", "churned"],
                "views": [
                    {
                        "ref": f"{n}_v1",
                        "table": f"{n}_v1",
                        "parquet": str(project / f"{n}_v1.parquet"),
                        "timestamp": "feature_ts",
                        "features": VIEWS[n],
                    }
                    for n in names
                ],
            },
            indent=2,
        )
    )
    outputs = {m: results / f"{slug}.{m.replace(' ', '_').lower()}.parquet" for m in METHODS}
    baselines = str(BENCH / "train_set_baselines.py")
    return {
        "featurekit": (
            [sys.executable, "-m", "featurekit", "train-set", str(project.parent / "data" / "labels.parquet"),
             "--feature-set", feature_set, "-o", str(outputs["featurekit"]), "-q", "--project-dir", str(project)],
            outputs["featurekit"],
        ),
        "raw DuckDB": ([sys.executable, baselines, "duckdb", str(case_file), str(outputs["raw DuckDB"])], outputs["raw DuckDB"]),
        "raw DuckDB 2GB": ([sys.executable, baselines, "duckdb-2gb", str(case_file), str(outputs["raw DuckDB 2GB"])],
                           outputs["raw DuckDB 2GB"]),
        "pandas": ([sys.executable, baselines, "pandas", str(case_file), str(outputs["pandas"])], outputs["pandas"]),
    }


def comparable(column: pa.ChunkedArray) -> np.ndarray:
    """A column as float64 with NaN for null, so int/float/timestamp/bool compare alike."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us")).cast(pa.int64())
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)


def disagreements(outputs: dict[str, Path]) -> list[str]:
    """Every (method, column) whose values differ from featurekit's, row by row."""
    tables = {m: pq.read_table(p) for m, p in outputs.items()}
    reference = tables["featurekit"]
    problems = []
    for method, table in tables.items():
        if table.column_names != reference.column_names or table.num_rows != reference.num_rows:
            problems.append(f"{method}: columns/rows {table.column_names}/{table.num_rows} differ")
            continue
        for name in reference.column_names:
            if not np.array_equal(comparable(reference[name]), comparable(table[name]), equal_nan=True):
                problems.append(f"{method}: column {name} differs from featurekit's")
    return problems


def measure_case(project: Path, case: str, results: Path, method_runs: dict[str, int]):
    """Each method's runs for a case, interleaved so that drift hits every method alike, and
    the disagreements between their outputs."""
    planned = commands(project, case, results)
    measured: dict[str, list[Run]] = {m: [] for m in METHODS}
    for round_ in range(max(method_runs.values())):
        for method in METHODS:
            if round_ < method_runs[method]:
                print(f"  {case}: {method} run {round_ + 1}", flush=True)
                measured[method].append(run_measured(planned[method][0]))
    return measured, disagreements({m: planned[m][1] for m in METHODS})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="small")
    parser.add_argument("--runs", type=int, help="runs per method (default: 1 for tiny, else 3)")
    parser.add_argument("--pandas-runs", type=int, help="runs for pandas, the slowest (default: --runs)")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="where data and the bench project go")
    parser.add_argument("--rebuild", action="store_true", help="generate the data and build the project again")
    parser.add_argument("--engine", choices=["duckdb", "postgres", "spark"], default="duckdb",
                        help="postgres: the one-view case on a throwaway PostgreSQL beside hand-written SQL (train_set_postgres.py); "
                             "spark: the three-view case on a local Spark beside hand-written Spark SQL (train_set_spark.py)")
    parser.add_argument("--label-sizes", type=lambda text: [int(n) for n in text.split(",")], default=[],
                        help="spark: also run featurekit per label count given (e.g. 100000,2000000), for its memory")
    parser.add_argument("--label-sizes-only", action="store_true", help="spark: run only the --label-sizes part")
    args = parser.parse_args()
    if args.engine == "postgres":
        from train_set_postgres import main as postgres_main

        return postgres_main(args, prepare, disagreements, SCALES)
    if args.engine == "spark":
        from train_set_spark import main as spark_main

        return spark_main(args, prepare, project_files, disagreements, SCALES, VIEWS, _digest)
    scale = SCALES[args.scale]
    runs = args.runs or scale["runs"]
    method_runs = {"featurekit": runs, "raw DuckDB": runs, "raw DuckDB 2GB": runs, "pandas": args.pandas_runs or runs}
    out = args.out.resolve() / f"train_set_{args.scale}"
    project = prepare(out, args.scale, args.rebuild)
    results = out / "results"
    results.mkdir(exist_ok=True)

    load = os.getloadavg()[0]
    rows, failed, featurekit_runs = [], [], {}
    for case in CASES:
        measured, problems = measure_case(project, case, results, method_runs)
        failed += [f"{case}: {p}" for p in problems]
        base = summarize(measured["raw DuckDB"])
        for method in METHODS:
            run = summarize(measured[method])
            rows.append([case, method, len(measured[method]), f"{run.seconds:.2f} s", f"{run.seconds / base.seconds:.2f}x",
                         f"{run.seconds - base.seconds:+.2f} s", f"{run.cpu_seconds:.2f} s",
                         f"{run.cpu_seconds / base.cpu_seconds:.2f}x", mib(run.peak_rss), "NO" if problems else "yes"])
        featurekit_runs[case] = (summarize(measured["featurekit"]), base, summarize(measured["raw DuckDB 2GB"]))

    print(
        f"\ntrain-set, scale {args.scale}: {scale['labels']:,} labels, {scale['rows']:,} rows per view "
        f"({scale['keys']:,} keys); {os.cpu_count()} cores, load average {load:.1f} -> {os.getloadavg()[0]:.1f}, "
        f"duckdb {duckdb.__version__}\nmedian of the runs, peak RSS the highest of the runs, each method in a fresh process"
    )
    print(format_table(
        ["case", "method", "runs", "wall", "vs raw", "minus raw", "CPU", "CPU vs raw", "peak RSS", "same values"],
        rows, left=2,
    ))
    if args.scale == "large":
        print()
        for case, (run, base, bounded) in featurekit_runs.items():
            checks = [
                (run.seconds <= TARGETS[case], f"{run.seconds:.2f} s <= {TARGETS[case]:.0f} s"),
                (run.peak_rss <= TARGET_RSS, f"peak {mib(run.peak_rss)} <= {TARGET_RSS / 1e9} GB"),
                (run.seconds - base.seconds <= TARGET_OVERHEAD, f"{run.seconds - base.seconds:+.2f} s over raw <= {TARGET_OVERHEAD:.0f} s"),
            ]
            print(f"target {case}: " + ", ".join(f"{text} {'met' if ok else 'MISSED'}" for ok, text in checks)
                  + f" ({run.seconds - bounded.seconds:+.2f} s over raw DuckDB at the same memory limit)")
    for problem in failed:
        print(f"MISMATCH {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
