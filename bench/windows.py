"""Benchmark: exact sliding-window histories (window_history) at scale.

    python bench/windows.py [--events 10000000] [--keys 1000000] [--labels 1000000] [--runs 3]

Generates events (deterministic numpy: heavy and light keys, a fifth of the events in bursts
seconds to minutes apart, 2% null values, 8% returns, which the views filter out) and labels
(random times, and 1% exactly at an event or exactly 30 days after one), and builds them in a
bench dbt project under bench/out/windows/ (using featurekit's dbt package like a user project):

  windowed   window_history, 3 windows (15 minutes, 7 days, 30 days): three counts,
             two sums and an average; a row at every event and at every expiry
  plain      the same aggregates at event instants only, as the core's views were before
             windows (right at an event, stale between events)

It times, each in a fresh process: the windowed build from scratch (`dbt run --full-refresh`;
dbt's own model time and the whole command) against, in the same run, the naive baseline:
the same windows computed directly per label by one DuckDB query with RANGE frames over
events and labels, which every training set would pay again and which cannot serve online.
Then an incremental run after 1% more events (some of them late), `featurekit train-set`
over the windowed view against the plain view, and checks that the windowed training set
equals the naive per-label values (a mismatch exits 1) and counts how many plain values are
stale. Data and the project are reused while their inputs are unchanged (--rebuild: again).
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

from _common import bench_project_files, format_table, mib, run_measured, summarize, use_featurekit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GENERATOR_VERSION = 1

START = np.datetime64("2024-01-01T00:00:00", "us")
SPAN_S = 180 * 86_400
MINUTE_US, DAY_US = 60_000_000, 86_400_000_000
WINDOWS_US = {"15m": 15 * MINUTE_US, "7d": 7 * DAY_US, "30d": 30 * DAY_US}
# name -> (function, window, column); the plain view and the naive query compute the same.
AGGREGATES = {
    "orders_15m": ("count", "15m", None),
    "orders_7d": ("count", "7d", None),
    "value_7d": ("sum", "7d", "order_value"),
    "orders_30d": ("count", "30d", None),
    "value_30d": ("sum", "30d", "order_value"),
    "avg_value_30d": ("avg", "30d", "order_value"),
}
DURATIONS = {"15m": "15 minutes", "7d": "7 days", "30d": "30 days"}
TARGET_BUILD_S, TARGET_ROWS_RATIO, TARGET_TRAIN_RATIO = 60.0, 3.0, 1.5


# ---------------------------------------------------------------- data


def events_table(events: int, keys: int, seed: int, loaded_from_s: int = 0) -> pa.Table:
    rng = np.random.default_rng([seed, events, keys])
    weight = rng.lognormal(0.0, 1.0, keys)  # some customers are far busier than others
    base = int(events * 0.8)
    customer = rng.choice(np.arange(1, keys + 1), base, p=weight / weight.sum())
    ts_s = rng.integers(0, SPAN_S, base)
    follow = rng.integers(0, base, events - base)  # bursts: seconds to minutes after another event
    customer = np.r_[customer, customer[follow]]
    ts_us = np.r_[ts_s, ts_s[follow] + rng.integers(1, 900, follow.size)] * 1_000_000
    ts_us += np.where(rng.random(events) < 0.3, rng.integers(0, 1_000_000, events), 0)  # some to the µs
    value = np.round(rng.lognormal(3.5, 0.8, events), 2)
    loaded_us = (np.maximum(ts_us // 1_000_000, loaded_from_s) + rng.integers(60, 3600, events)) * 1_000_000
    return pa.table(
        {
            "order_id": np.arange(events, dtype=np.int64) + seed * 10**9,
            "customer_id": customer.astype(np.int64),
            "order_ts": START + ts_us.astype("timedelta64[us]"),
            "order_value": pa.array(value, mask=rng.random(events) < 0.02),
            "is_return": rng.random(events) < 0.08,
            "loaded_at": START + loaded_us.astype("timedelta64[us]"),
        }
    )


def labels_table(labels: int, keys: int, events: pa.Table) -> pa.Table:
    rng = np.random.default_rng([7, labels, keys])
    customer = rng.integers(1, int(keys * 1.05) + 1, labels)  # 5% unknown customers
    ts_us = rng.integers(0, (SPAN_S + 31 * 86_400) * 1_000_000, labels)
    edges = rng.choice(labels, labels // 50, replace=False)  # at an event, or 30 days after one
    picked = rng.integers(0, events.num_rows, edges.size)
    customer[edges] = events["customer_id"].to_numpy()[picked]
    event_us = (events["order_ts"].to_numpy()[picked] - START).astype(np.int64)
    ts_us[edges] = event_us + np.where(np.arange(edges.size) % 2 == 0, 0, WINDOWS_US["30d"])
    return pa.table({"rid": np.arange(1, labels + 1), "customer_id": customer, "label_ts": START + ts_us.astype("timedelta64[us]")})


# ---------------------------------------------------------------- the bench dbt project


def project_files(data_dir: Path) -> dict[str, str]:
    aggregates = ",\n".join(
        f"        {{'name': '{name}', 'function': '{f}', 'window': '{DURATIONS[w]}'"
        + (f", 'column': '{c}'" if c else "") + "}"
        for name, (f, w, c) in AGGREGATES.items()
    )
    plain_columns = ",\n".join(
        f"    {plain_expression(f, w, c)} as {name}" for name, (f, w, c) in AGGREGATES.items()
    )
    features = "".join(f"      - name: {n}\n" for n in AGGREGATES)
    fill = ", ".join(f"{n}: 0" for n, (f, _, _) in AGGREGATES.items() if f == "count")
    files = {
        **bench_project_files("bench", f"vars:\n  bench_events: {json.dumps(str(data_dir / 'events'))}\n"),
        "models/bench_events.sql": (
            "{{ config(materialized='view') }}\n"
            "select * from read_parquet('{{ var(\"bench_events\") }}/*.parquet')\n"
        ),
        "models/windowed_v1.sql": (
            "{{ config(materialized='incremental', incremental_strategy='featurekit_history', unique_key=['customer_id', 'feature_ts']) }}\n"
            "{{ featurekit.window_history(\n    ref('bench_events'),\n    keys=['customer_id'],\n    timestamp='order_ts',\n"
            "    loaded_at='loaded_at',\n    where='not is_return',\n    aggregates=[\n"
            f"{aggregates},\n    ],\n    existing=this if is_incremental() else none,\n) }}}}\n"
        ),
        "models/plain_v1.sql": (
            "{{ config(materialized='table') }}\n"
            "-- At each event instant, the events of the window up to and including it.\n"
            "with per_instant as (\n"
            "    select customer_id, order_ts, count(*) as n, count(order_value) as nv, sum(order_value) as s\n"
            "    from {{ ref('bench_events') }} where not is_return group by all\n)\n"
            f"select customer_id, order_ts as feature_ts,\n{plain_columns}\nfrom per_instant\nwindow\n"
            + ",\n".join(
                f"    w{w} as (partition by customer_id order by order_ts range between interval {DURATIONS[w]} preceding and current row)"
                for w in WINDOWS_US
            )
            + "\n"
        ),
    }
    for name in ["windowed", "plain"]:
        files[f"models/{name}.yml"] = (
            f"version: 2\nmodels:\n  - name: {name}\n    latest_version: 1\n    config:\n      meta:\n"
            f"        featurekit: {{entity: customer, keys: [customer_id], timestamp: feature_ts, fill: {{{fill}}}}}\n"
            f"    columns:\n      - name: customer_id\n      - name: feature_ts\n{features}    versions:\n      - v: 1\n"
        )
    return files


def plain_expression(function: str, window: str, column) -> str:
    if function == "count":
        return f"cast(sum(n) over w{window} as bigint)"
    if function == "sum":
        return f"sum(s) over w{window}"
    return f"sum(s) over w{window} / nullif(sum(nv) over w{window}, 0)"


def naive_sql(events: str, labels: str) -> str:
    """Per label (in label order): each aggregate over the events in [label_ts - window,
    label_ts), with RANGE frames over integer microseconds."""
    columns = []
    for name, (function, window, column) in AGGREGATES.items():
        value = {"count": "count(e)", "sum": "fsum(v)", "avg": "favg(v)"}[function]
        columns.append(f"{value} over w{window} as {name}")
    frames = ",\n".join(
        f"  w{w} as (partition by customer_id order by us range between {us} preceding and 1 preceding)"
        for w, us in WINDOWS_US.items()
    )
    return f"""
with stream as (
    select customer_id, epoch_us(order_ts) as us, 1 as e, order_value as v, null::bigint as rid
    from read_parquet('{events}') where not is_return
    union all
    select customer_id, epoch_us(label_ts), null, null, rid from read_parquet('{labels}')
)
select rid, {', '.join(columns)}
from stream
window
{frames}
qualify rid is not null
order by rid
"""


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def featurekit(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "featurekit", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"featurekit {' '.join(args)} failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")


def prepare(out: Path, args) -> tuple[Path, Path]:
    """Generated data and the bench project (re-made when their inputs change)."""
    data_dir, project = out / "data", out / "project"
    files = project_files(data_dir)
    data_key = _digest(GENERATOR_VERSION, args.events, args.keys, args.labels)
    stamp = out / "prepared.json"
    if args.rebuild or not stamp.is_file() or json.loads(stamp.read_text()).get("data") != data_key:
        print(f"generating {args.events:,} events over {args.keys:,} keys and {args.labels:,} labels in {data_dir}", flush=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        (data_dir / "events").mkdir(parents=True)
        events = events_table(args.events, args.keys, seed=1)
        pq.write_table(events, data_dir / "events" / "base.parquet")
        pq.write_table(labels_table(args.labels, args.keys, events), data_dir / "labels.parquet")
    shutil.rmtree(project, ignore_errors=True)
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    use_featurekit(project)
    stamp.write_text(json.dumps({"data": data_key}))
    return data_dir, project


def model_seconds(project: Path, model: str) -> float:
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    return next(r["execution_time"] for r in results if r["unique_id"].startswith(f"model.bench.{model}"))


def dbt_run(project: Path, *args: str):
    command = [sys.executable, "-m", "featurekit", "dbt", "run", *args, "--project-dir", str(project)]
    return run_measured(command)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--rebuild", action="store_true", help="generate the data again")
    args = parser.parse_args()
    out = args.out.resolve() / "windows"
    data_dir, project = prepare(out, args)
    events, labels = data_dir / "events" / "base.parquet", data_dir / "labels.parquet"
    warehouse = project / "warehouse.duckdb"
    load = os.getloadavg()[0]

    print("building both views once (dbt run)", flush=True)
    featurekit("dbt", "run", "--project-dir", str(project))
    builds, model_times, naive_runs = [], [], []
    naive_out = out / "naive.parquet"
    naive = [sys.executable, "-c", "import duckdb, sys; duckdb.connect().execute(sys.argv[1])",
             f"COPY ({naive_sql(events, labels)}) TO '{naive_out}' (FORMAT parquet)"]
    for run in range(args.runs):  # interleaved, so drift hits both alike
        print(f"  windowed build from scratch, run {run + 1}", flush=True)
        builds.append(dbt_run(project, "--select", "windowed_v1", "--full-refresh"))
        model_times.append(model_seconds(project, "windowed"))
        print(f"  naive per-label windows, run {run + 1}", flush=True)
        naive_runs.append(run_measured(naive))

    with duckdb.connect(str(warehouse), read_only=True) as con:
        history_rows = con.execute("SELECT count(*) FROM windowed_v1").fetchall()[0][0]
        plain_rows = con.execute("SELECT count(*) FROM plain_v1").fetchall()[0][0]
        kept = con.execute("SELECT count(*) FILTER (WHERE NOT is_return), count(*) FROM bench_events").fetchall()[0]

    print("  incremental run after 1% more events", flush=True)
    extra = data_dir / "events" / "extra.parquet"
    last_load_s = int((pq.read_table(events, columns=["loaded_at"])["loaded_at"].to_numpy().max() - START) // np.timedelta64(1, "s"))
    pq.write_table(events_table(args.events // 100, args.keys, seed=2, loaded_from_s=last_load_s + 1), extra)
    try:
        incremental = dbt_run(project, "--select", "windowed_v1")
        incremental_model = model_seconds(project, "windowed")
    finally:
        extra.unlink()
    print("  rebuilding from scratch without them", flush=True)
    dbt_run(project, "--select", "windowed_v1", "--full-refresh")

    train_runs = {"windowed": [], "plain": []}
    outputs = {name: out / f"train_{name}.parquet" for name in train_runs}
    for run in range(args.runs):
        for name in train_runs:
            print(f"  train-set over {name}_v1, run {run + 1}", flush=True)
            train_runs[name].append(run_measured([sys.executable, "-m", "featurekit", "train-set", str(labels),
                                                  "--features", f"{name}_v1", "-o", str(outputs[name]), "-q",
                                                  "--project-dir", str(project)]))
    mismatched, stale = compare(naive_out, outputs)

    build, naive_run = summarize(builds), summarize(naive_runs)
    model_time = sorted(model_times)[len(model_times) // 2]
    train = {name: summarize(runs) for name, runs in train_runs.items()}
    print(
        f"\nwindow histories: {args.events:,} events ({kept[0]:,} kept, returns filtered out) over {args.keys:,} keys, "
        f"3 windows, {len(AGGREGATES)} aggregates; {args.labels:,} labels; {os.cpu_count()} cores, load average "
        f"{load:.1f} -> {os.getloadavg()[0]:.1f}, duckdb {duckdb.__version__}\nmedian of {args.runs} runs, each in a fresh process"
    )
    rows = [
        ["windowed history build (dbt model)", f"{model_time:.1f} s", "", "", ""],
        ["windowed history build (dbt run command)", f"{build.seconds:.1f} s", f"{build.cpu_seconds:.1f} s", mib(build.peak_rss),
         f"{build.seconds / naive_run.seconds:.2f}x naive"],
        ["naive: windows per label (DuckDB RANGE)", f"{naive_run.seconds:.1f} s", f"{naive_run.cpu_seconds:.1f} s",
         mib(naive_run.peak_rss), "1.00x"],
        [f"incremental run, +{args.events // 100:,} events (dbt model)", f"{incremental_model:.1f} s",
         f"{incremental.cpu_seconds:.1f} s", mib(incremental.peak_rss), f"command {incremental.seconds:.1f} s"],
        ["train-set over the windowed view", f"{train['windowed'].seconds:.1f} s", f"{train['windowed'].cpu_seconds:.1f} s",
         mib(train["windowed"].peak_rss), f"{train['windowed'].seconds / train['plain'].seconds:.2f}x plain"],
        ["train-set over the plain view", f"{train['plain'].seconds:.1f} s", f"{train['plain'].cpu_seconds:.1f} s",
         mib(train["plain"].peak_rss), "1.00x"],
    ]
    print(format_table(["step", "wall", "CPU", "peak RSS", "ratio"], rows))
    print(
        f"\nhistory rows: windowed {history_rows:,} = {history_rows / kept[0]:.2f}x the kept events "
        f"({history_rows / kept[1]:.2f}x all events; at most 1 + 3 windows = 4 per event); plain {plain_rows:,}"
    )
    print(f"windowed train-set vs naive per-label values: {mismatched:,} mismatches in {args.labels * len(AGGREGATES):,} values")
    print(f"plain train-set vs naive: {stale:,} labels with a stale orders_30d (the error exact windows remove)")
    print(
        f"targets: build <= {TARGET_BUILD_S:.0f} s: {'met' if model_time <= TARGET_BUILD_S else 'MISSED'}; "
        f"history <= {TARGET_ROWS_RATIO:.0f}x events: {'met' if history_rows <= TARGET_ROWS_RATIO * kept[1] else 'MISSED'}; "
        f"train-set <= {TARGET_TRAIN_RATIO}x plain: "
        f"{'met' if train['windowed'].seconds <= TARGET_TRAIN_RATIO * train['plain'].seconds else 'MISSED'}"
    )
    return 1 if mismatched else 0


def compare(naive_out: Path, outputs: dict[str, Path]) -> tuple[int, int]:
    """(values where the windowed training set differs from the naive per-label query, labels
    whose plain orders_30d differs from it). Nulls match nulls; sums match to the last bit."""
    with duckdb.connect() as con:
        checks = " + ".join(
            f"(w.{n} IS DISTINCT FROM n.{n})::int" for n in AGGREGATES
        )
        numbered = "SELECT * FROM read_parquet('{}')"
        mismatched = con.execute(
            f"SELECT coalesce(sum({checks}), 0) FROM ({numbered.format(outputs['windowed'])}) w "
            f"JOIN read_parquet('{naive_out}') n USING (rid)"
        ).fetchall()[0][0]
        stale = con.execute(
            f"SELECT count(*) FROM ({numbered.format(outputs['plain'])}) p JOIN read_parquet('{naive_out}') n USING (rid) "
            "WHERE p.orders_30d IS DISTINCT FROM n.orders_30d"
        ).fetchall()[0][0]
    return int(mismatched), int(stale)


if __name__ == "__main__":
    sys.exit(main())
