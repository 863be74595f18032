"""Benchmark: online serving at 1M keys, with its baselines measured in the same run.

    python bench/online.py [--scale large|medium|small] [--days 3] [--http-seconds 15] [--http-rate 1000]

1. Data: the example shop at the given scale (`python -m featurekit.example.shop_data parquet`, kept
   in bench/data/shop_<scale>/), built in a bench copy of the project (bench/out/online_<scale>/,
   its SQL synced from the repo at every run) by `featurekit refresh` = dbt build of the
   serving path + publish. Then --days times: one more day of data is loaded (the last day's
   orders, logins, tickets and profile changes again, one day later, loaded after everything
   before) and `featurekit refresh` is timed, with dbt's time per phase; then
   `featurekit publish` alone.
2. In-process, over 10,000 calls each with random keys: OnlineStore.get of one key and of
   100 keys (p50/p99), against two baselines: a parametrized DuckDB query on the same
   snapshot file (the views left-joined on the key, no ttl/fill work) and a Python dict of
   ready vectors.
3. HTTP: `featurekit serve` on 127.0.0.1 with 1 worker, then 2, driven from another process
   over keep-alive connections for --http-seconds each: one key at --http-rate and 100 keys
   at 500 req/s (open loop: p50/p99 as the client sees them), 100 keys as fast as 16
   connections go (closed loop: requests/s), and each worker's memory.
Prints one table; figures go to bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

import http_load
from _common import format_table, run_measured, summarize, use_featurekit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROJECT_FILES = ["dbt_project.yml", "profiles.yml.example", "models", "macros", "seeds"]
# The bench project reads each raw table from a folder: the generated file plus a file per day added.
SOURCES = "models/staging/__sources.yml"
DAY_TABLES = {  # table: (time columns shifted by a day, id column or None)
    "raw_orders": (["order_ts"], "order_id"),
    "raw_logins": (["login_ts"], None),
    "raw_support_tickets": (["opened_ts"], "ticket_id"),
    "raw_customers": (["valid_from"], None),
}
TARGETS = {"single key p99 ms": 0.03, "100 keys p99 ms": 0.5, "HTTP p99 ms": 5.0, "refresh + publish s": 10.0, "logging p99 ratio": 1.10}
CALLS = 10_000



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=["small", "medium", "large"], default="large")
    parser.add_argument("--http-seconds", type=float, default=15.0)
    parser.add_argument("--http-rate", type=float, default=1000.0)
    parser.add_argument("--days", type=int, default=3, help="incremental refreshes, each after loading one more day of data")
    parser.add_argument("--rebuild", action="store_true", help="build the bench project again from scratch")
    parser.add_argument("--serve-only", action="store_true", help="skip the refresh and publish timings; serve the current snapshot")
    parser.add_argument("--no-feast", action="store_true", help="skip Feast's feature server beside it")
    args = parser.parse_args()

    project = prepare_project(args.scale, args.rebuild)
    rows = []
    if not args.serve_only:
        if not (project / "warehouse.duckdb").exists():
            first = run_measured([featurekit(), "refresh", "--project-dir", str(project)])
            rows.append(report(["refresh (first build + publish)", seconds(first.seconds), f"CPU {first.cpu_seconds:.0f} s", ""]))
        runs, phases = [], []
        for _ in range(args.days):
            added = add_day(project)
            print(f"$ featurekit refresh  (after loading day {added})", flush=True)
            runs.append(run_measured([featurekit(), "refresh", "--project-dir", str(project)]))
            phases.append(dbt_phases(project))
            report([f"refresh after day {added}", seconds(runs[-1].seconds), f"CPU {runs[-1].cpu_seconds:.1f} s", phases[-1]])
        if runs:
            refresh = summarize(runs)
            rows.append(report([f"refresh after a day of new data (median of {len(runs)})", seconds(refresh.seconds),
                                f"CPU {refresh.cpu_seconds:.1f} s", f"target <= {TARGETS['refresh + publish s']} s; last: {phases[-1]}"]))
        alone = run_measured([featurekit(), "publish", "-q", "--project-dir", str(project)])
        rows.append(report(["publish alone", seconds(alone.seconds), f"CPU {alone.cpu_seconds:.1f} s", ""]))

    online = project / "online"
    snapshot_id = (online / "CURRENT").read_text().strip()
    manifest = json.loads((online / f"{snapshot_id}.json").read_text())
    with duckdb.connect(str(online / f"{snapshot_id}.duckdb"), read_only=True) as con:
        keys = con.execute("SELECT count(DISTINCT customer_id) FROM customer_profile_v1").fetchall()[0][0]
    print(f"snapshot {snapshot_id}: {keys:,} customers, {sum(v['rows'] for v in manifest['views'].values()):,} rows")

    from featurekit import OnlineStore

    before = rss_mib()
    started = time.perf_counter()
    store = OnlineStore(online)
    load_s = time.perf_counter() - started
    rows.append(report(["OnlineStore open (mapped)", f"{load_s * 1000:.0f} ms", "", f"target <= 1 s; RSS +{rss_mib() - before} MiB"]))
    rows += [report(row) for row in in_process(store, online / f"{snapshot_id}.duckdb", manifest, keys)]
    rows += [report(row) for row in logging_cost(store, online, keys)]
    rows += over_http(project, keys, args.http_rate, args.http_seconds)
    if not args.no_feast:
        rows += feast_baseline(online / f"{snapshot_id}.duckdb", keys, args.http_rate, args.http_seconds)
    print()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end")
    print(format_table(["measure", "value", "baseline", "note"], rows))


def report(row: list) -> list:
    """Prints a result as soon as it is measured (a long run that fails later keeps it)."""
    print("  " + ": ".join(str(c) for c in row if c), flush=True)
    return row


def prepare_project(scale: str, rebuild: bool) -> Path:
    """The bench copy of the project, its SQL and settings synced from the repo (the
    warehouse and snapshots kept), reading the raw tables from bench/out/online_<scale>/data/."""
    data = BENCH / "data" / f"shop_{scale}"
    if not (data / "raw_orders.parquet").exists():
        print(f"generating the {scale} example shop in {data} ...", flush=True)
        subprocess.run([sys.executable, "-m", "featurekit.example.shop_data", "parquet", "--scale", scale, "--dir", str(data)], check=True)
    out = BENCH / "out" / f"online_{scale}"
    project = out / "project"
    if rebuild and out.exists():
        shutil.rmtree(out)
    project.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source, copy = REPO / name, project / name
        if source.is_dir():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(source, copy)
        else:
            shutil.copy2(source, copy)
    tables = out / "data"
    for name in [p.stem for p in data.glob("*.parquet")]:
        (tables / name).mkdir(parents=True, exist_ok=True)
        if not (tables / name / "base.parquet").exists():
            (tables / name / "base.parquet").symlink_to(data / f"{name}.parquet")
    config = project / "dbt_project.yml"
    config.write_text(re.sub(r'shop_data_dir: ""', f'shop_data_dir: "{tables}"', config.read_text()))
    use_featurekit(project)
    sources = project / SOURCES
    sources.write_text(sources.read_text().replace("/{name}.parquet", "/{name}/*.parquet"))
    return project


def add_day(project: Path) -> int:
    """Loads day n (1, 2, ...) after the generated data: the rows of its last day again,
    n days and a second later (new ids), loaded after every earlier load."""
    tables = project.parent / "data"
    day = 1 + len(list((tables / "raw_orders").glob("day_*.parquet")))
    con = duckdb.connect()
    for name, (times, id_column) in DAY_TABLES.items():
        folder = tables / name
        base = f"read_parquet('{folder}/base.parquet')"
        last = con.execute(f"SELECT max({times[0]}) FROM {base}").fetchall()[0][0]
        shift = f"INTERVAL {day} DAY + INTERVAL 1 SECOND"
        replace = [f"{t} + {shift} AS {t}" for t in times]
        if id_column:
            top = con.execute(f"SELECT max({id_column}) FROM {base}").fetchall()[0][0]
            replace.append(f"{id_column} + {day * (top + 1)} AS {id_column}")
        columns = [c for c, *_ in con.execute(f"DESCRIBE SELECT * FROM {base}").fetchall()]
        if "loaded_at" in columns:  # a load is later than every earlier one (the watermark contract)
            loaded = con.execute(f"SELECT max(loaded_at) FROM read_parquet('{folder}/*.parquet')").fetchall()[0][0]
            replace.append(f"greatest(loaded_at + {shift}, TIMESTAMP '{loaded}' + INTERVAL 1 MINUTE) AS loaded_at")
        con.execute(
            f"COPY (SELECT * REPLACE ({', '.join(replace)}) FROM {base} WHERE {times[0]} > TIMESTAMP '{last}' - INTERVAL 1 DAY) "
            f"TO '{folder}/day_{day:03d}.parquet' (FORMAT parquet)"
        )
    con.close()
    return day


def dbt_phases(project: Path) -> str:
    """dbt's own time per kind of node in the last run (from target/run_results.json)."""
    results = json.loads((project / "target" / "run_results.json").read_text())
    groups: dict[str, float] = {}
    for result in results["results"]:
        node = result["unique_id"]
        name = node.split(".")[2]
        kind = "online tables" if name.startswith("online_") else "feature views" if node.count(".") == 3 else "staging, seeds"
        groups[kind] = groups.get(kind, 0.0) + result["execution_time"]
    return f"dbt {results['elapsed_time']:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(groups.items())) + ")"


def featurekit() -> str:
    return str(Path(sys.executable).with_name("featurekit"))


def in_process(store, snapshot_db: Path, manifest: dict, keys: int) -> list[list]:
    rng = random.Random(1)
    singles = [rng.randint(1, keys) for _ in range(CALLS)]
    batches = [[rng.randint(1, keys) for _ in range(100)] for _ in range(CALLS)]
    get = store.get
    single = latencies(lambda k: get("churn_model", {"customer_id": k}), singles)
    batch = latencies(lambda ks: get("churn_model", [{"customer_id": k} for k in ks]), batches)

    # Baseline 1: parametrized DuckDB queries over the same rows, copied sorted by key so that
    # zone maps skip all but the key's block: the views' rows of the keys, left-joined (no
    # ttl, fill or request-time work), and the simplest point query on one view.
    views = manifest["feature_sets"]["churn_model"]["views"]
    sorted_db = BENCH / "out" / "online_baseline.duckdb"
    sorted_db.unlink(missing_ok=True)
    con = duckdb.connect(str(sorted_db))
    con.execute(f"ATTACH '{snapshot_db}' AS snapshot (READ_ONLY)")
    for v in views:
        con.execute(f'CREATE TABLE "{v["ref"]}" AS SELECT * FROM snapshot."{v["ref"]}" ORDER BY customer_id')
    con.execute("DETACH snapshot")

    def query(keys: str, match: str) -> str:
        joins = " ".join(
            f'LEFT JOIN (SELECT * FROM "{v["ref"]}" WHERE customer_id {match}) AS v{i} USING (customer_id)'
            for i, v in enumerate(views)
        )
        return f"SELECT * FROM ({keys}) AS k {joins}"

    one = query("SELECT $1::BIGINT AS customer_id", "= $1")
    many = query("SELECT unnest($1::BIGINT[]) AS customer_id", "IN (SELECT unnest($1::BIGINT[]))")
    duck_single = latencies(lambda k: con.execute(one, [k]).fetchall(), singles[:2000])
    duck_batch = latencies(lambda ks: con.execute(many, [ks]).fetchall(), batches[:1000])
    point = f'SELECT * FROM "{views[1]["ref"]}" WHERE customer_id = $1'
    duck_point = latencies(lambda k: con.execute(point, [k]).fetchall(), singles[:2000])
    con.close()
    sorted_db.unlink()

    # Baseline 2: a dict of ready vectors (no request time, ttl or fill work at all).
    ready = dict(zip(range(1, keys + 1), _vectors(store, keys)))
    dict_single = latencies(lambda k: ready.get(k), singles)
    dict_batch = latencies(lambda ks: [ready.get(k) for k in ks], batches)
    return [
        ["DuckDB point query, 1 view, p50 / p99", f"{ms(duck_point, 50)} / {ms(duck_point, 99)} ms", "", "a baseline"],
        ["in-process 1 key p50 / p99", f"{ms(single, 50)} / {ms(single, 99)} ms", f"DuckDB {ms(duck_single, 50)} / {ms(duck_single, 99)}; dict {ms(dict_single, 50)} / {ms(dict_single, 99)}", f"target p99 <= {TARGETS['single key p99 ms']} ms; CPU median {cpu_ms(single)} ms"],
        ["in-process 100 keys p50 / p99", f"{ms(batch, 50)} / {ms(batch, 99)} ms", f"DuckDB {ms(duck_batch, 50)} / {ms(duck_batch, 99)}; dict {ms(dict_batch, 50)} / {ms(dict_batch, 99)}", f"target p99 <= {TARGETS['100 keys p99 ms']} ms; CPU median {cpu_ms(batch)} ms"],
    ]


def logging_cost(store, online: Path, keys: int) -> list[list]:
    """The served-feature log's cost on the request path: calls alternate between the store
    without a log and one logging every vector (its writer thread busy in the background),
    so both see the same machine load."""
    from featurekit import OnlineStore

    rng = random.Random(2)
    singles = [rng.randint(1, keys) for _ in range(CALLS)]
    with tempfile.TemporaryDirectory() as log_dir:
        logged = OnlineStore(online, log_dir=log_dir)
        for key in singles[:1000]:  # warm-up: a store just loaded pays for its first calls
            store.get("churn_model", {"customer_id": key})
            logged.get("churn_model", {"customer_id": key})
        plain, with_log = [], []
        for key in singles:
            plain += latencies(lambda k: store.get("churn_model", {"customer_id": k}), [key])
            with_log += latencies(lambda k: logged.get("churn_model", {"customer_id": k}), [key])
        logged.close()
        dropped = logged.log.dropped
    ratio = np.percentile(with_log, 99) / np.percentile(plain, 99)
    return [[
        "1 key with the served-feature log on, p50 / p99",
        f"{ms(with_log, 50)} / {ms(with_log, 99)} ms",
        f"log off {ms(plain, 50)} / {ms(plain, 99)} ms",
        f"p99 {ratio:.2f}x of log off (target <= {TARGETS['logging p99 ratio']:.2f}x); {dropped} vectors dropped",
    ]]


def _vectors(store, keys: int):
    for start in range(1, keys + 1, 10_000):
        for row in store.lookup("churn_model", list(range(start, min(start + 10_000, keys + 1)))).rows:
            yield tuple(row)


def over_http(project: Path, keys: int, rate: float, seconds_: float) -> list[list]:
    """`featurekit serve` with one worker, then two: single keys at `rate`, 100-key batches
    (the compact rows format) at 500 req/s, and as fast as 16 connections go; each worker's
    memory at the end (RSS, and its private part: what one more worker costs)."""
    rows = []
    for workers in (1, 2):
        with serving(project, workers) as (port, server):
            label = f"{workers} worker{'s' if workers > 1 else ''}"
            http_load.run(port, "open", 200, 2, 1, http_load.bodies(1, keys, "featurekit", []))  # warm-up: the pages a lookup touches
            runs = [("open", rate, 8, 1, f"1 key at {rate:,.0f} req/s"), ("closed", 0, 16, 1, "1 key, 16 connections"),
                    ("open", 500, 8, 100, "100 keys at 500 req/s"), ("closed", 0, 16, 100, "100 keys, 16 connections")]
            if workers > 1:
                runs.append(("open", 1000, 16, 100, "100 keys at 1,000 req/s"))
            for mode, per_second, connections, size, what in runs:
                result = http_load.run(port, mode, per_second or 1, seconds_, connections, http_load.bodies(size, keys, "featurekit", []))
                THROUGHPUT[(workers, what)] = result["rps"]
                rows.append(report([f"HTTP {label}, {what}: p50 / p99", f"{result['p50_ms']:.3f} / {result['p99_ms']:.3f} ms",
                                    f"{result['rps']:,.0f} req/s, {result['errors']} errors, {result['late']} sent >1 ms late",
                                    f"client: {result['client']}"]))
            memory = [worker_memory(pid) for pid in worker_pids(server)]
            rows.append(report([f"HTTP {label}: memory per worker", "; ".join(f"RSS {r:,} MiB (private {p:,})" for r, p in memory), "", ""]))
    ratio = THROUGHPUT[(2, "100 keys, 16 connections")] / THROUGHPUT[(1, "100 keys, 16 connections")]
    rows.append(report(["HTTP 100 keys, 16 connections: 2 workers / 1", f"{ratio:.2f}x", "", "target >= 1.6x"]))
    return rows


THROUGHPUT: dict = {}


class serving:
    def __init__(self, project: Path, workers: int):
        self.args = [featurekit(), "serve", "--port", "0", "--workers", str(workers), "--project-dir", str(project)]

    def __enter__(self):
        self.server = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = int(re.search(r":(\d+) ", self.server.stderr.readline()).group(1))
        return port, self.server

    def __exit__(self, *exc):
        self.server.send_signal(signal.SIGTERM)
        self.server.wait(timeout=30)


# Feast (0.67) beside it, if it installs (in its own venv: its dependencies are not dbt's):
# one feature view of the same snapshot's rows in its SQLite online store, `feast serve`.
FEAST_VENV = BENCH / "out" / "feast-venv"
FEAST_VIEW = "customer_profile_v1"
FEAST_FEATURES = [f"{FEAST_VIEW}:plan", f"{FEAST_VIEW}:signup_ts"]
FEAST_REPO = """
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource
from feast.types import String, UnixTimestamp
customer = Entity(name="customer", join_keys=["customer_id"])
source = FileSource(path="{path}", timestamp_field="event_timestamp")
view = FeatureView(name="{view}", entities=[customer], ttl=timedelta(days=3650),
                   schema=[Field(name="plan", dtype=String), Field(name="signup_ts", dtype=UnixTimestamp)], source=source)
"""


def feast_baseline(snapshot_db: Path, keys: int, rate: float, seconds_: float) -> list[list]:
    feast = FEAST_VENV / "bin" / "feast"
    if not feast.exists():
        created = subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)]).returncode == 0 and subprocess.run(
            [str(FEAST_VENV / "bin" / "pip"), "install", "-q", "feast==0.67.0"]).returncode == 0
        if not created:
            return [report(["Feast", "did not install", "", ""])]
    repo = BENCH / "out" / f"feast_{keys}"
    rows = []
    if not (repo / "data" / "online.db").exists():
        shutil.rmtree(repo, ignore_errors=True)
        (repo / "data").mkdir(parents=True)
        with duckdb.connect(str(snapshot_db), read_only=True) as con:
            con.execute(f"COPY (SELECT customer_id, plan, signup_ts, __fk_feature_ts AS event_timestamp FROM {FEAST_VIEW}) "
                        f"TO '{repo / 'data' / 'profile.parquet'}' (FORMAT parquet)")
        (repo / "feature_store.yaml").write_text(
            "project: fkbench\nregistry: data/registry.db\nprovider: local\nonline_store: {type: sqlite, path: data/online.db}\n"
            "offline_store: {type: file}\nentity_key_serialization_version: 3\n")
        (repo / "features.py").write_text(FEAST_REPO.format(path=repo / "data" / "profile.parquet", view=FEAST_VIEW))
        subprocess.run([str(feast), "apply"], cwd=repo, check=True, capture_output=True)
        started = time.perf_counter()
        subprocess.run([str(feast), "materialize", "2000-01-01T00:00:00", "2100-01-01T00:00:00"], cwd=repo, check=True, capture_output=True)
        rows.append(report([f"Feast: materialize {keys:,} keys of {FEAST_VIEW} into SQLite", seconds(time.perf_counter() - started), "", ""]))
    for workers in (1, 2):
        server = subprocess.Popen([str(feast), "serve", "--port", "6577", "--workers", str(workers), "--no-access-log",
                                   "--max-requests", "1000000"], cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while subprocess.run(["curl", "-s", "-o", "/dev/null", "localhost:6577/health"]).returncode != 0:
                assert time.monotonic() < deadline and server.poll() is None, "feast serve did not start"
                time.sleep(0.5)
            label = f"Feast serve {workers} worker{'s' if workers > 1 else ''}"
            http_load.run(6577, "open", 200, 2, 1, http_load.bodies(1, keys, "feast", FEAST_FEATURES))  # warm-up
            for mode, per_second, connections, size, what in (("open", rate, 8, 1, f"1 key at {rate:,.0f} req/s"),
                                                               ("closed", 0, 16, 1, "1 key, 16 connections"),
                                                               ("closed", 0, 16, 100, "100 keys, 16 connections")):
                result = http_load.run(6577, mode, per_second or 1, seconds_, connections, http_load.bodies(size, keys, "feast", FEAST_FEATURES))
                rows.append(report([f"{label}, {what}: p50 / p99", f"{result['p50_ms']:.3f} / {result['p99_ms']:.3f} ms",
                                    f"{result['rps']:,.0f} req/s, {result['errors']} errors", f"1 view, 2 features; client: {result['client']}"]))
            memory = [worker_memory(pid) for pid in worker_pids(server)]
            rows.append(report([f"{label}: memory per worker", "; ".join(f"RSS {r:,} MiB (private {p:,})" for r, p in memory), "", ""]))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    return rows


def worker_pids(server) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children] or [server.pid]


def worker_memory(pid: int) -> tuple[int, int]:
    """RSS and private (not shared with another process) memory, in MiB."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0])
    return fields["Rss"] // 1024, (fields["Private_Clean"] + fields["Private_Dirty"]) // 1024


def latencies(call, inputs) -> list[float]:
    """Wall time per call; the median CPU time of this thread per call goes to CPU_MEDIANS,
    which shows the cost of a call apart from waiting for a core on a busy machine."""
    out, cpu = [], []
    clock, thread_clock = time.perf_counter, time.thread_time_ns
    for item in inputs:
        started, started_cpu = clock(), thread_clock()
        call(item)
        out.append(clock() - started)
        cpu.append(thread_clock() - started_cpu)
    CPU_MEDIANS[id(out)] = np.median(cpu) / 1e6
    return out


CPU_MEDIANS: dict[int, float] = {}


def cpu_ms(values) -> str:
    return f"{CPU_MEDIANS[id(values)]:.3f}"


def ms(values, q) -> str:
    return f"{np.percentile(values, q) * 1000:.3f}"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def rss_mib() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) // 1024


if __name__ == "__main__":
    os.chdir(BENCH)
    main()
