"""Benchmark: `featurekit parity` over 1M logged lookups, with the replay alone as baseline.

    python bench/parity.py [--scale large|medium|small] [--lookups 1000000] [--runs 3]

1. The example shop at the given scale (bench/data/shop_<scale>/, as bench/online.py makes
   it), built by `featurekit refresh` in bench/out/parity_<scale>/project/.
2. A served-feature log of --lookups vectors in its fixed format (10 Parquet files of
   churn_model vectors), written from featurekit.training_set at random customers and
   request times: the correct serving path.
   Both are kept in bench/out/parity_<scale>/ and reused while the repo's dbt project files
   (dbt_project.yml, macros, models) are unchanged.
3. Timed, each in a fresh process with process start, interleaved, median of --runs:
     parity     `featurekit parity LOG`: read the log, replay it, compare every column
     train-set  `featurekit train-set LOOKUPS.parquet --feature-set churn_model`: the replay
                alone, the baseline (the same join over the same keys and times)
The log comes from the library itself, so parity must find 0 mismatches: otherwise the
parity run exits 1 and so does this script.
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
import pandas as pd

from _common import format_table, mib, run_measured, summarize, use_featurekit
from featurekit.catalog import resolve
from featurekit.project import Project

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
import parity_paths  # noqa: E402  the served-log writer the tests use

PROJECT_FILES = ["dbt_project.yml", "profiles.yml.example", "models", "macros", "seeds"]
TARGET_SECONDS = 30.0  # parity over 1M lookups on 2 cores
FIRST, LAST = np.datetime64("2024-03-01T00:00:00", "us"), np.datetime64("2024-11-01T00:00:00", "us")


def built_project(scale: str) -> Path:
    """The example project built on the scale's data, made again (and its logs with it) when
    the repo's dbt project files changed since."""
    data = BENCH / "data" / f"shop_{scale}"
    if not (data / "raw_orders.parquet").exists():
        print(f"generating the {scale} example shop in {data}", flush=True)
        subprocess.run([sys.executable, "-m", "featurekit.example.shop_data", "parquet", "--scale", scale, "--dir", str(data)], check=True)
    out = BENCH / "out" / f"parity_{scale}"
    project = out / "project"
    fingerprint = hashlib.sha256(
        json.dumps({str(p.relative_to(REPO)): p.read_text() for name in ("dbt_project.yml", "macros", "models", "python/featurekit/dbt")
                    for p in sorted([REPO / name, *(REPO / name).rglob("*")]) if p.is_file()}).encode()
    ).hexdigest()
    stamp = out / "built"
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return project
    shutil.rmtree(out, ignore_errors=True)
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, project / name)
    config = project / "dbt_project.yml"
    config.write_text(config.read_text().replace('shop_data_dir: ""', f'shop_data_dir: "{data}"'))
    use_featurekit(project)
    print(f"building {project} (featurekit refresh)", flush=True)
    subprocess.run([sys.executable, "-m", "featurekit", "refresh", "--project-dir", str(project)], check=True,
                   stdout=subprocess.DEVNULL)
    stamp.write_text(fingerprint)
    return project


def served_log(project: Path, lookups: int) -> tuple[Path, Path]:
    """(the log directory, the lookups as a label file), made once per size."""
    out = project.parent / f"log_{lookups}"
    labels = project.parent / f"lookups_{lookups}.parquet"
    if (out / "done").exists():
        return out, labels
    shutil.rmtree(out, ignore_errors=True)
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        customers = con.execute("SELECT max(customer_id) FROM customer_profile_v1").fetchall()[0][0]
    rng = np.random.default_rng(20240301)
    frame = pd.DataFrame({
        "customer_id": rng.integers(1, customers + 1, lookups),
        "request_ts": FIRST + rng.integers(0, int((LAST - FIRST) / np.timedelta64(1, "us")), lookups).astype("timedelta64[us]"),
    })
    frame.to_parquet(labels, index=False)
    print(f"writing a served log of {lookups:,} vectors in {out}", flush=True)
    parity_paths.write_log(parity_paths.correct_vectors(project, frame), out, files=10)
    (out / "done").write_text("")
    return out, labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=["small", "medium", "large"], default="large")
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    project = built_project(args.scale)
    log, labels = served_log(project, args.lookups)
    featurekit = [sys.executable, "-m", "featurekit"]
    commands = {
        "parity": [*featurekit, "parity", str(log), "-q", "--json", "--project-dir", str(project)],
        "train-set (baseline)": [*featurekit, "train-set", str(labels), "--feature-set", parity_paths.FEATURE_SET,
                                 "--timestamp-column", "request_ts", "-q", "-o", str(project.parent / "replay.parquet"),
                                 "--project-dir", str(project)],
    }
    load = os.getloadavg()[0]
    runs = {name: [] for name in commands}
    for round_ in range(args.runs):
        for name, command in commands.items():  # interleaved, so drift hits both alike
            print(f"  {name} run {round_ + 1}", flush=True)
            runs[name].append(run_measured(command))
    base = summarize(runs["train-set (baseline)"])
    rows = []
    for name in commands:
        run = summarize(runs[name])
        rows.append([name, args.runs, f"{run.seconds:.2f} s", f"{run.seconds / base.seconds:.2f}x", mib(run.peak_rss)])
    spec = resolve(Project(project), feature_set=parity_paths.FEATURE_SET)
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        views = sum(con.execute(f"SELECT count(*) FROM {v['relation'].split('.', 1)[1]}").fetchall()[0][0] for v in spec["views"])
    print(
        f"\nparity, scale {args.scale}: {args.lookups:,} logged vectors of {parity_paths.FEATURE_SET} "
        f"({len(spec['views'])} views, {views:,} view rows); {os.cpu_count()} cores, load average {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}; median of the runs, each in a fresh process"
    )
    print(format_table(["command", "runs", "wall", "vs train-set", "peak RSS"], rows), flush=True)
    check = subprocess.run(commands["parity"], capture_output=True, text=True, check=True)  # exits 1 on a mismatch
    compared = sum(c["compared"] for s in json.loads(check.stdout)["feature_sets"] for c in s["columns"])
    print(f"values compared: {compared:,}, mismatches: 0")
    parity = summarize(runs["parity"])
    verdict = "meets" if parity.seconds <= TARGET_SECONDS else "MISSES"
    print(f"target: parity over 1M lookups <= {TARGET_SECONDS:.0f} s: {verdict} ({parity.seconds:.1f} s)")
    return 0 if parity.seconds <= TARGET_SECONDS or args.lookups != 1_000_000 else 1


if __name__ == "__main__":
    os.chdir(BENCH)
    sys.exit(main())
