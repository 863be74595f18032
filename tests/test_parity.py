"""`featurekit parity LOG`: served vectors replayed through the training-set join.

Logs are written in the served-log format (tests/parity_paths.py) from a correct path (the
library), a deliberately skewed one (hand-written, 7-day window and zero-filled nulls) and
one that drops returns; and, end to end, by the real OnlineStore serving a snapshot of a
warehouse that had only the data before a cut-off time.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

import parity_paths as paths
from conftest import copy_project, featurekit_cli
from featurekit.online.store import OnlineStore
from featurekit.monitor.parity import NEWER_THAN_SNAPSHOT, WAREHOUSE_BEHIND
from online_helpers import copy_built_project

SKEWED = ["orders_30d", "order_value_30d", "avg_satisfaction_90d", "days_since_last_purchase"]


@pytest.fixture(scope="module")
def lookups(built_project) -> pd.DataFrame:
    return paths.requests(built_project, 2000, seed=7)


def parity(project, log, *args, code=None):
    result = featurekit_cli("parity", str(log), "--project-dir", str(project), "--json", "-q", *args, check=False)
    if code is not None:
        assert result.returncode == code, result.stdout + result.stderr
    return json.loads(result.stdout) if result.stdout else None, result


def columns(report) -> dict[str, dict]:
    [feature_set] = report["feature_sets"]
    return {c["column"]: c for c in feature_set["columns"]}


def differing(a: pd.DataFrame, b: pd.DataFrame, column: str) -> int:
    both_null = a[column].isna() & b[column].isna()
    return int((~both_null & (a[column] != b[column])).sum())


def test_correct_path_has_no_mismatches(built_project, lookups, tmp_path):
    log = paths.write_log(paths.correct_vectors(built_project, lookups), tmp_path / "log", files=3)
    report, _ = parity(built_project, log, code=0)
    [feature_set] = report["feature_sets"]
    assert feature_set["rows"] == len(lookups)
    assert report["failing"] == []
    assert all(e["excluded"] == 0 for e in feature_set["exclusions"])
    served = pd.read_parquet(tmp_path / "log" / paths.FEATURE_SET)
    feature_columns = [c for c in served.columns if c not in ("feature_set", "request_ts", "served_at", "snapshot_id", "customer_id")]
    assert sorted(columns(report)) == sorted(feature_columns)
    for column in columns(report).values():
        assert column["compared"] == column["matches"] == len(lookups), column
        assert column["mismatches"] == column["missing_served"] == column["missing_replayed"] == 0


def test_skewed_path_is_flagged_column_by_column(built_project, lookups, tmp_path):
    correct = paths.correct_vectors(built_project, lookups)
    skewed = paths.skewed_vectors(built_project, lookups)
    log = paths.write_log(skewed, tmp_path / "log")
    report, result = parity(built_project, log, code=1)
    assert sorted(report["failing"]) == sorted(f"{paths.FEATURE_SET}.{c}" for c in SKEWED)
    assert "served differently from the replay" in result.stderr and "orders_30d" in result.stderr
    for name, column in columns(report).items():
        expected = differing(correct, skewed, name)
        assert column["mismatches"] == expected, name
        assert column["compared"] == len(lookups)
        if name in SKEWED:
            assert expected > 0
            assert column["mismatch_rate"] == expected / len(lookups)
            diff = (skewed[name] - correct[name]).abs()
            assert column["mean_abs_error"] == pytest.approx(diff.mean())
            assert column["rel_error"] == pytest.approx(diff.sum() / correct[name].abs().sum())
            assert column["examples"]
        else:
            assert expected == 0


def test_returns_counted_on_one_side_only(built_project, lookups, tmp_path):
    log = paths.write_log(paths.returns_vectors(built_project, lookups), tmp_path / "log")
    report, _ = parity(built_project, log, code=1)
    assert f"{paths.FEATURE_SET}.orders_30d" in report["failing"]
    assert columns(report)["tickets_90d"]["mismatches"] == 0


def test_threshold_and_readable_table(built_project, lookups, tmp_path):
    log = paths.write_log(paths.skewed_vectors(built_project, lookups), tmp_path / "log")
    report, _ = parity(built_project, log, code=1)
    worst = max(c["mismatch_rate"] for c in columns(report).values())
    parity(built_project, log, "--max-mismatch-rate", str(worst), code=0)
    table = featurekit_cli("parity", str(log), "--project-dir", str(built_project), "-q", check=False)
    assert table.returncode == 1
    orders = next(line for line in table.stdout.splitlines() if line.startswith("orders_30d "))
    assert f"{columns(report)['orders_30d']['mismatches']:,}" in orders
    assert "orders_30d at customer_id=" in table.stdout  # an example to start debugging from


def test_bad_logs_are_reported(built_project, lookups, tmp_path):
    vectors = paths.correct_vectors(built_project, lookups)
    empty = tmp_path / "empty"
    empty.mkdir()
    _, result = parity(built_project, empty, code=2)
    assert "holds no served-*.parquet files" in result.stderr
    log = paths.write_log(vectors.assign(request_ts=vectors["request_ts"].where(vectors.index != 5)), tmp_path / "nulls")
    _, result = parity(built_project, log, code=2)
    assert "1 row(s) with an empty 'request_ts'" in result.stderr
    _, result = parity(built_project, log, "--feature-set", "churn_model_v2", code=2)
    assert "no vectors of feature set 'churn_model_v2'" in result.stderr


# -------------------------------------------------------------------------------------------
# End to end: the real OnlineStore serving snapshots of a warehouse cut off at CUT.

CUT = datetime(2024, 7, 1)
EVENT_TIME = {"raw_orders": "order_ts", "raw_customers": "valid_from", "raw_support_tickets": "opened_ts", "raw_logins": "login_ts"}


@pytest.fixture(scope="module")
def cut_project(tmp_path_factory) -> Path:
    """The example project built from only the events before CUT, with a snapshot as of CUT:
    what serving had on CUT if no data arrives late."""
    project = copy_project(tmp_path_factory.mktemp("cut") / "project")
    for table, column in EVENT_TIME.items():
        path = project / "seeds" / f"{table}.csv"
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        at = rows[0].index(column)
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([rows[0], *(r for r in rows[1:] if r[at] < CUT.isoformat(sep=" "))])
    featurekit_cli("refresh", "--project-dir", str(project))
    featurekit_cli("publish", "--project-dir", str(project), "--as-of", CUT.isoformat() + "Z", "-q")
    return project


def serve_and_log(online_dir: Path, log_dir: Path, lookups: pd.DataFrame) -> None:
    store = OnlineStore(online_dir, log_dir=log_dir)
    try:
        for customer_id, request_ts in lookups.itertuples(index=False):
            store.get(paths.FEATURE_SET, {"customer_id": int(customer_id)}, request_ts=request_ts.to_pydatetime())
    finally:
        store.close()


def test_replay_leaves_out_data_newer_than_the_snapshot(built_project, cut_project, tmp_path):
    """Served from the cut-off snapshot, replayed on the full warehouse: every row whose replay
    picks data that appeared at or after the snapshot's as_of is left out; all the rest match."""
    lookups = paths.requests(built_project, 1500, seed=11, start=CUT, days=14)
    serve_and_log(cut_project / "online", tmp_path / "log", lookups)
    report, result = parity(built_project, tmp_path / "log", "--online-dir", str(cut_project / "online"), code=0)
    [feature_set] = report["feature_sets"]
    assert feature_set["rows"] == len(lookups)
    assert feature_set["unknown_snapshots"] == []
    excluded = {e["view"]: e for e in feature_set["exclusions"]}
    assert excluded["customer_orders_v1"]["reasons"][NEWER_THAN_SNAPSHOT] > 0
    for column in feature_set["columns"]:
        assert column["mismatches"] == column["missing_served"] == column["missing_replayed"] == 0, column
        assert column["compared"] == len(lookups) - excluded[column["view"]]["excluded"]
        assert column["compared"] > 0
    # Without the snapshot's manifest, served_at (now) is the only bound: nothing is left out
    # and the data that arrived after CUT shows as mismatches.
    report, _ = parity(built_project, tmp_path / "log", "--online-dir", str(tmp_path / "no-snapshots"), code=1)
    assert "customer_orders_v1__feature_ts" in [c.split(".", 1)[1] for c in report["failing"]]


def test_replay_on_an_older_warehouse_leaves_out_what_it_lacks(built_project, cut_project, tmp_path):
    """Served from a snapshot of the full warehouse as of CUT, replayed on the cut-off
    warehouse, which lacks everything after CUT."""
    full = copy_built_project(built_project, tmp_path / "full")
    featurekit_cli("publish", "--project-dir", str(full), "--as-of", CUT.isoformat() + "Z", "-q")
    lookups = paths.requests(built_project, 1500, seed=12, start=CUT, days=14)
    serve_and_log(full / "online", tmp_path / "log", lookups)
    report, _ = parity(cut_project, tmp_path / "log", "--online-dir", str(full / "online"), code=0)
    [feature_set] = report["feature_sets"]
    excluded = {e["view"]: e for e in feature_set["exclusions"]}
    assert excluded["customer_orders_v1"]["reasons"][WAREHOUSE_BEHIND] > 0
    for column in feature_set["columns"]:
        assert column["mismatches"] == column["missing_served"] == column["missing_replayed"] == 0, column
        assert column["compared"] > 0
