"""The example's windowed feature views (customer_orders v1/v2, login_activity v1/v2,
order_velocity v1, support_tickets v2: window_history) with real dbt builds, the real train-set CLI and
the real online store, against a brute-force oracle over the raw seed rows at every window
edge: each event, each expiry (event + window) and a microsecond either side."""

from __future__ import annotations

import csv
import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from featurekit.online.store import OnlineStore
from featurekit.online.publish import publish
from conftest import copy_project, featurekit_cli

pytestmark = pytest.mark.slow  # real dbt builds in tmp copies

US = timedelta(microseconds=1)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

# Per view: its events (a query over the built warehouse), its windows, and each feature as
# (name, window, how to aggregate the window's events, fill).
COUNT = len


def value_sum(events):
    values = [e["order_value"] for e in events]
    return math.fsum(values) if values else None


def value_max(events):
    return max((e["order_value"] for e in events), default=None)


def returns(events):
    return sum(1 for e in events if e["is_return"])


def mean_satisfaction(events):
    rated = [e["satisfaction"] for e in events if e["satisfaction"] is not None]
    return sum(rated) / len(rated) if rated else None


ORDERS = "SELECT customer_id, order_ts AS ts, order_value, is_return, order_id FROM stg_orders"
LOGINS = "SELECT customer_id, login_ts AS ts FROM stg_logins"
VIEWS = {
    "customer_orders_v1": (ORDERS, [("orders_30d", 30 * DAY, COUNT, 0), ("order_value_30d", 30 * DAY, value_sum, 0)]),
    "customer_orders_v2": (
        ORDERS + " WHERE NOT is_return",
        [("orders_30d", 30 * DAY, COUNT, 0), ("order_value_30d", 30 * DAY, value_sum, 0)],
    ),
    "login_activity_v1": (LOGINS, [("logins_7d", 7 * DAY, COUNT, 0)]),
    "login_activity_v2": (LOGINS, [("logins_7d", 7 * DAY, COUNT, 0)]),
    "support_tickets_v2": (
        "SELECT customer_id, opened_ts AS ts, satisfaction FROM stg_support_tickets",
        [("tickets_90d", 90 * DAY, COUNT, 0), ("avg_satisfaction_90d", 90 * DAY, mean_satisfaction, 3.5)],
    ),
    "order_velocity_v1": (
        ORDERS,
        [
            ("orders_15m", 15 * MINUTE, COUNT, 0),
            ("orders_1h", HOUR, COUNT, 0),
            ("max_order_value_1h", HOUR, value_max, None),
            ("returns_24h", 24 * HOUR, returns, 0),
        ],
    ),
}


def load_events(project: Path) -> dict[str, dict[int, list[dict]]]:
    """Per view, its raw events by customer, in time order."""
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        events = {}
        for view, (sql, _) in VIEWS.items():
            result = con.execute(sql + " ORDER BY ts")
            names = [d[0] for d in result.description]
            by_customer: dict[int, list[dict]] = {}
            for row in result.fetchall():
                by_customer.setdefault(row[0], []).append(dict(zip(names, row)))
            events[view] = by_customer
        return events
    finally:
        con.close()


def oracle(view: str, events: list[dict], t: datetime) -> list:
    """The view's features at t, then its feature timestamp (the last change instant before t)."""
    features = VIEWS[view][1]
    changes = [e["ts"] + offset for e in events for offset in [timedelta(0), *{w for _, w, _, _ in features}]]
    feature_ts = max((c for c in changes if c < t), default=None)
    values = []
    for _, window, aggregate, fill in features:
        value = None if feature_ts is None else aggregate([e for e in events if t - window <= e["ts"] < t])
        values.append(fill if value is None else value)
    return [*values, feature_ts]


def edge_times(events: list[dict], windows) -> set[datetime]:
    times = set()
    for e in events:
        for offset in [timedelta(0), *windows]:
            times |= {e["ts"] + offset - US, e["ts"] + offset, e["ts"] + offset + US}
    return times


def busiest(events: dict[int, list[dict]], count: int) -> list[int]:
    return sorted(events, key=lambda c: (-len(events[c]), c))[:count]


def same(want, got) -> bool:
    if want is None or (isinstance(got, float) and math.isnan(got)):
        return want is None and (got is None or isinstance(got, float) and math.isnan(got) or got is pd.NaT)
    return want == got


# ---------------------------------------------------------------------------------------------
# train-set over the built example


def test_train_set_matches_the_oracle_at_every_window_edge(built_project, tmp_path):
    events = load_events(built_project)
    compared = 0
    for view, (_, features) in VIEWS.items():
        windows = {w for _, w, _, _ in features}
        customers = busiest(events[view], 25) + [10**9]  # and one with no events at all
        labels = [(c, t) for c in customers for t in sorted(edge_times(events[view].get(c, []), windows))]
        labels += [(c, datetime(2024, 3, 1, 9)) for c in customers]
        path = tmp_path / f"{view}.parquet"
        pd.DataFrame(labels, columns=["customer_id", "label_ts"]).astype({"label_ts": "datetime64[us]"}).to_parquet(path)
        out = tmp_path / f"{view}_train.parquet"
        featurekit_cli("train-set", str(path), "--features", view, "-o", str(out), "-q", "--project-dir", str(built_project))
        got = pd.read_parquet(out)
        columns = [name for name, _, _, _ in features] + [f"{view}__feature_ts"]
        assert list(got.columns) == ["customer_id", "label_ts", *columns]
        bad = []
        for (customer, t), row in zip(labels, got[columns].itertuples(index=False)):
            want = oracle(view, events[view].get(customer, []), t)
            got_row = [None if v is pd.NaT else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for v in row]
            bad += [f"{view} customer {customer} t={t} {c}: oracle {w!r}, train-set {g!r}" for c, w, g in zip(columns, want, got_row) if not same(w, g)]
        assert bad == [], bad[:5]
        compared += len(labels)
    assert compared > 5000


# ---------------------------------------------------------------------------------------------
# The online store: the snapshot of time T answers exactly at every later expiry, because the
# history's future-dated expiry rows are served as they come due.


# The windowed views each feature set serves.
SERVED = {
    "churn_model": ["customer_orders_v1", "login_activity_v1"],
    "churn_model_v2": ["customer_orders_v2", "login_activity_v2", "support_tickets_v2", "order_velocity_v1"],
}


def test_online_lookups_expire_exactly_after_the_snapshot(built_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(built_project, project, ignore=shutil.ignore_patterns("*.wal", "logs"))
    snapshot_at = datetime(2024, 10, 20)
    publish(project, online_dir=tmp_path / "online", as_of=snapshot_at)
    store = OnlineStore(tmp_path / "online")
    events = load_events(project)
    compared = expired = 0
    for feature_set, view in [(s, v) for s, views in SERVED.items() for v in views]:
        features = VIEWS[view][1]
        windows = {w for _, w, _, _ in features}
        for customer in busiest(events[view], 40):
            for t in sorted(x for x in edge_times(events[view][customer], windows) if x > snapshot_at):
                served = store.get(feature_set, {"customer_id": customer}, request_ts=t)
                want = oracle(view, events[view][customer], t)
                got = [served[name] for name, _, _, _ in features]
                assert got == want[:-1], (view, customer, t, got, want)
                compared += 1
                expired += want[0] == 0
    assert compared > 1000 and expired > 40  # windows did empty after the snapshot


# ---------------------------------------------------------------------------------------------
# Incremental build == build from scratch


def append_rows(project: Path, seed: str, rows: list[dict]) -> None:
    path = project / "seeds" / f"{seed}.csv"
    with open(path, newline="") as f:
        fields = csv.DictReader(f).fieldnames
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fields, lineterminator="\n").writerows(rows)


def new_rows(project: Path) -> dict[str, list[dict]]:
    """Rows loaded after everything built, aimed at the window edges of existing rows: an
    order at the same instant as an existing one, one exactly 30 days (an expiry instant)
    after one, a late order placed months ago, a return (v2 ignores it), a burst of a new
    customer's orders within 15 minutes, logins a week apart to the microsecond and a late
    login placed weeks ago (LATE_LOGIN), and tickets (one unrated) exactly 90 days apart."""
    with open(project / "seeds" / "raw_orders.csv", newline="") as f:
        orders = [r for r in csv.DictReader(f) if r["customer_id"] == "3"]
    first, second = orders[0]["order_ts"], orders[1]["order_ts"]
    at = datetime.fromisoformat
    loaded = "2024-11-20 00:00:00"

    def order(number, customer, ts, value, status="completed"):
        return {"order_id": str(900100 + number), "customer_id": str(customer), "order_ts": str(ts),
                "order_value": value, "status": status, "loaded_at": loaded}

    return {
        "raw_orders": [
            order(1, 3, first, "10.25"),
            order(2, 3, at(second) + 30 * DAY, "20.50"),
            order(3, 3, "2024-06-15 12:00:00", "30.75"),
            order(4, 5, "2024-08-01 08:00:00", "99.00", "returned"),
            order(5, 1502, "2024-11-09 10:00:00", "5.00"),
            order(6, 1502, "2024-11-09 10:05:00", "6.00", "returned"),
            order(7, 1502, "2024-11-09 10:14:59.999999", "7.00"),
        ],
        "raw_logins": [
            {"customer_id": "3", "login_ts": "2024-11-10 08:00:00", "device": "web", "loaded_at": loaded},
            {"customer_id": "3", "login_ts": "2024-11-17 08:00:00", "device": "ios", "loaded_at": loaded},
            {"customer_id": "1502", "login_ts": "2024-11-17 07:59:59.999999", "device": "web", "loaded_at": loaded},
            {"customer_id": "3", "login_ts": LATE_LOGIN, "device": "web", "loaded_at": loaded},
        ],
        "raw_support_tickets": [
            {"ticket_id": "900101", "customer_id": "3", "opened_ts": "2024-08-12 09:00:00", "priority": "high",
             "satisfaction": "2", "loaded_at": loaded},
            {"ticket_id": "900102", "customer_id": "3", "opened_ts": "2024-11-10 09:00:00", "priority": "low",
             "satisfaction": "", "loaded_at": loaded},
        ],
    }


LATE_LOGIN = "2024-10-01 08:00:00"


WINDOWED = list(VIEWS)


def rows(project: Path, view: str) -> list[tuple]:
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        return sorted(con.execute(f"SELECT * FROM {view}").fetchall(), key=repr)


def test_incremental_build_equals_build_from_scratch(built_project, tmp_path):
    incremental = tmp_path / "incremental"
    shutil.copytree(built_project, incremental, ignore=shutil.ignore_patterns("*.wal", "logs"))
    scratch = copy_project(tmp_path / "scratch")
    added = new_rows(incremental)
    for project in (incremental, scratch):
        for seed, extra in added.items():
            append_rows(project, seed, extra)
    before = {view: rows(incremental, view) for view in WINDOWED}

    featurekit_cli("dbt", "seed", "--project-dir", str(incremental))
    shutil.copy(incremental / "warehouse.duckdb", tmp_path / "seeded.duckdb")  # new events, old histories
    featurekit_cli("dbt", "build", "--select", "+" + " +".join(WINDOWED), "--project-dir", str(incremental))
    featurekit_cli("dbt", "build", "--select", "+" + " +".join(WINDOWED), "--project-dir", str(scratch))

    for view in WINDOWED:
        after = rows(incremental, view)
        assert len(after) > len(before[view]), view
        if view != "login_activity_v1":
            assert after == rows(scratch, view), view
    # v1 goes by login time, so it misses the late login (and the week it counts in); v2
    # goes by load time and counts it.
    missed = set(rows(scratch, "login_activity_v1")) ^ set(rows(incremental, "login_activity_v1"))
    late = datetime.fromisoformat(LATE_LOGIN)
    assert missed and all(r[0] == 3 and late <= r[1] <= late + 7 * DAY for r in missed)
    # What the incremental run computed: its compiled query over the state it started from.
    # Only customers with new rows, and only from their earliest new event on.
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{tmp_path / 'seeded.duckdb'}' AS warehouse (READ_ONLY)")
        for view, since in [("customer_orders_v1", {3: "2024-01-18 02:50:31", 5: "2024-08-01 08:00", 1502: "2024-11-09 10:00"}),
                            ("customer_orders_v2", {3: "2024-01-18 02:50:31", 1502: "2024-11-09 10:00"}),
                            ("login_activity_v1", {3: "2024-11-10 08:00", 1502: "2024-11-17 07:59:59.999999"}),
                            ("login_activity_v2", {3: LATE_LOGIN, 1502: "2024-11-17 07:59:59.999999"}),
                            ("support_tickets_v2", {3: "2024-08-12 09:00"})]:
            compiled = (incremental / "target" / "compiled" / "shop" / "models" / "features" / f"{view}.sql").read_text()
            assert "__fk_changed" in compiled  # compiled as an incremental run
            recomputed = con.execute(f"SELECT customer_id, min(feature_ts) FROM ({compiled}) GROUP BY ALL").fetchall()
            assert {c: t for c, t in recomputed} == {c: datetime.fromisoformat(t) for c, t in since.items()}, view


def test_bad_aggregate_fails_dbt_parse_with_a_sentence(tmp_path):
    project = copy_project(tmp_path / "project")
    (project / "models" / "features" / "broken_v1.sql").write_text(
        "{{ featurekit.window_history(ref('stg_orders'), keys=['customer_id'], timestamp='order_ts',"
        " aggregates=[{'name': 'orders_30d', 'function': 'count', 'window': '1 month'}]) }}\n"
    )
    result = featurekit_cli("dbt", "parse", "--project-dir", str(project), check=False)
    assert result.returncode == 2
    assert (
        "models/features/broken_v1.sql: window_history: aggregate 'orders_30d': duration '1 month' is not of the form "
        "'<whole number> <second|minute|hour|day|week>s', e.g. '30 days'"
    ) in result.stdout + result.stderr
