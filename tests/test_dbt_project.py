"""The dbt side of the core, with real `dbt build`s in tmp copies of the example project:
the training model equals `featurekit train-set`; the leakage and unique-history tests fail on
broken models (dbt's own exit code and failing test names); feature-view history survives
`--full-refresh`; an incremental run after new source rows equals a build from scratch."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import copy_project, featurekit_cli

pytestmark = pytest.mark.slow  # real dbt builds in tmp copies

FEATURE_VIEWS = [
    "customer_profile_v1", "customer_orders_v1", "customer_orders_v2", "last_purchase_v1", "support_tickets_v1",
    "support_tickets_v2", "login_activity_v1", "login_activity_v2", "order_velocity_v1",
]


def dbt(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real dbt in the project, with the example profile (the warehouse in the project)."""
    profiles = project / ".pit_profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copyfile(project / "profiles.yml.example", profiles / "profiles.yml")
    command = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", *args, "--profiles-dir", str(profiles)]
    environment = {**os.environ, "FEATUREKIT_WAREHOUSE": str(project / "warehouse.duckdb"), **(env or {})}
    return subprocess.run(command, cwd=project, env=environment, capture_output=True, text=True)


def dbt_ok(project: Path, *args: str) -> None:
    result = dbt(project, *args)
    assert result.returncode == 0, result.stdout[-3000:]


def query(project: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def table(project: Path, name: str) -> list[tuple]:
    """Every row of a table, sorted (nulls and mixed types sort by their text)."""
    return sorted(query(project, f"SELECT * FROM {name}"), key=repr)


def copy_built(built_project: Path, destination: Path) -> Path:
    """A copy of the built example (warehouse and manifest included) to modify."""
    shutil.copytree(built_project, destination)
    return destination


def failed_tests(project: Path) -> dict[str, int]:
    """Test name -> failing rows, from dbt's run_results.json."""
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2]: r["failures"] for r in results if r["status"] == "fail"}


# ---------------------------------------------------------------------------------------------
# dbt training model == featurekit train-set


@pytest.mark.parametrize("feature_set", ["churn_model", "churn_model_v2"])
def test_dbt_training_model_equals_train_set(built_project, tmp_path, feature_set):
    out = tmp_path / "train.parquet"
    labels = built_project / "seeds" / "churn_labels.csv"
    featurekit_cli("train-set", str(labels), "--feature-set", feature_set, "-o", str(out), "-q", "--project-dir", str(built_project))

    with duckdb.connect(str(built_project / "warehouse.duckdb"), read_only=True) as con:
        cli = con.sql(f"SELECT * FROM read_parquet('{out}')")
        model = con.sql(f"SELECT * FROM {feature_set}_training")
        assert cli.columns == model.columns
        # Parquet has no HUGEINT (DuckDB's sum of BIGINT): it stores those columns as DOUBLE.
        assert cli.types == ["DOUBLE" if t == "HUGEINT" else t for t in model.types]
        cli_rows, model_rows = cli.fetchall(), model.fetchall()
    assert len(cli_rows) == len(model_rows) == sum(1 for _ in open(labels)) - 1
    assert cli_rows == model_rows  # same values, same order


# ---------------------------------------------------------------------------------------------
# The dbt tests can fail; the join is right whatever the session time zone

LEAKY_TRAINING = """
-- A hand-written as-of join that takes rows AT the label time too (>=): it leaks.
select l.customer_id, l.label_ts, l.churned, f.orders_30d, f.feature_ts as customer_orders_v1__feature_ts
from {{ ref('stg_churn_labels') }} as l
asof left join {{ ref('customer_orders', v=1) }} as f
  on l.customer_id = f.customer_id and l.label_ts >= f.feature_ts
"""

# A history with a restated load: customer 3's orders twice, the second time corrected.
DUPLICATED_HISTORY = """
select customer_id, order_ts as feature_ts, order_value from {{ ref('stg_orders') }}
union all
select customer_id, order_ts, order_value + 1 from {{ ref('stg_orders') }} where customer_id = 3
"""

# The churn labels with time-zone-aware label times (the same instants).
ZONED_LABELS = """
select customer_id, timezone('UTC', label_ts) as label_ts, churned from {{ ref('stg_churn_labels') }}
"""

ZONED_TRAINING = """
-- depends_on: {{ ref('customer_profile', v=1) }}
-- depends_on: {{ ref('customer_orders', v=1) }}
-- depends_on: {{ ref('last_purchase', v=1) }}
-- depends_on: {{ ref('support_tickets', v=1) }}
-- depends_on: {{ ref('login_activity', v=1) }}
{{ featurekit.training_set(ref('zoned_labels'), feature_set='churn_model') }}
"""

CHECKS_YML = """
version: 2
models:
  - name: leaky_training
    config: {materialized: table}
    data_tests: [featurekit.no_future_leakage]
  - name: zoned_training
    config: {materialized: table}
    data_tests: [featurekit.no_future_leakage]
  - name: duplicated_history
    config:
      meta:
        featurekit: {entity: customer, keys: [customer_id], timestamp: feature_ts}
    data_tests: [featurekit.unique_history]
    columns:
      - name: customer_id
      - name: feature_ts
      - name: order_value
"""


@pytest.fixture(scope="module")
def checked_project(built_project, tmp_path_factory):
    """The built example plus broken models, built by dbt in a session time zone east of UTC
    (a label-time conversion through the local zone would move labels into the future)."""
    project = copy_built(built_project, tmp_path_factory.mktemp("checks") / "project")
    models = project / "models" / "pit_checks"
    models.mkdir()
    for name, sql in [
        ("leaky_training", LEAKY_TRAINING),
        ("duplicated_history", DUPLICATED_HISTORY),
        ("zoned_labels", ZONED_LABELS),
        ("zoned_training", ZONED_TRAINING),
    ]:
        (models / f"{name}.sql").write_text(sql)
    (models / "pit_checks.yml").write_text(CHECKS_YML)
    result = dbt(project, "build", "--select", "pit_checks", env={"TZ": "Asia/Tokyo"})
    return project, result


def test_leakage_test_fails_on_a_leaking_join(checked_project):
    project, result = checked_project
    assert result.returncode == 1, result.stdout[-3000:]
    leaks = query(
        project,
        "SELECT count(*) FROM stg_churn_labels l WHERE EXISTS "
        "(SELECT 1 FROM customer_orders_v1 f WHERE f.customer_id = l.customer_id AND f.feature_ts = l.label_ts)",
    )[0][0]
    assert leaks > 0  # the example has orders at exactly a label time
    assert failed_tests(project) == {
        "featurekit_no_future_leakage_leaky_training_": leaks,
        "featurekit_unique_history_duplicated_history_": query(
            project,
            "SELECT count(*) FROM (SELECT 1 FROM stg_orders GROUP BY customer_id, order_ts "
            "HAVING count(*) + count(*) FILTER (WHERE customer_id = 3) > 1)",
        )[0][0],
    }
    assert "Failure in test featurekit_no_future_leakage_leaky_training_" in result.stdout
    assert "Failure in test featurekit_unique_history_duplicated_history_" in result.stdout


def test_training_model_with_zoned_labels_in_another_time_zone(checked_project):
    """The same label instants, zone-aware, in a session at UTC+9: the same features."""
    project, _ = checked_project
    columns = "* EXCLUDE (label_ts)"
    assert query(project, f"SELECT {columns} FROM zoned_training") == query(project, f"SELECT {columns} FROM churn_model_training")
    assert "featurekit_no_future_leakage_zoned_training_" not in failed_tests(project)


# ---------------------------------------------------------------------------------------------
# History


def rewrite_seed(project: Path, name: str, keep=lambda row: True, extra: list[dict] = ()) -> None:
    path = project / "seeds" / f"{name}.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if keep(r)]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows([*rows, *extra])


def test_full_refresh_keeps_feature_view_history(built_project, tmp_path):
    project = copy_built(built_project, tmp_path / "project")
    before = {view: table(project, view) for view in FEATURE_VIEWS}
    # The source forgets everything before April (e.g. a retention policy on raw data).
    for name, column in [("raw_orders", "order_ts"), ("raw_logins", "login_ts"), ("raw_support_tickets", "opened_ts")]:
        rewrite_seed(project, name, keep=lambda row: row[column] >= "2024-04-01")

    dbt_ok(project, "build", "--full-refresh")

    assert query(project, "SELECT count(*) FROM stg_orders WHERE order_ts < '2024-04-01'") == [(0,)]
    assert query(project, "SELECT count(*) FROM customer_orders_v1 WHERE feature_ts < '2024-04-01'")[0][0] > 0
    for view in FEATURE_VIEWS:
        assert table(project, view) == before[view], view


# New source rows, all loaded after everything already built: new customers, a plan change, new
# orders (one of them late: placed in September, loaded now), tickets and logins.
NEW_ROWS = {
    "raw_customers": [
        {"customer_id": "1501", "valid_from": "2024-11-02 10:00:00", "region": "north", "plan": "pro", "loaded_at": "2024-11-02 11:00:00"},
        {"customer_id": "7", "valid_from": "2024-11-03 09:00:00", "region": "east", "plan": "free", "loaded_at": "2024-11-03 09:30:00"},
    ],
    "raw_orders": [
        {"order_id": "900001", "customer_id": "1501", "order_ts": "2024-11-02 12:00:00", "order_value": "80.5", "status": "completed", "loaded_at": "2024-11-02 12:10:00"},
        {"order_id": "900002", "customer_id": "7", "order_ts": "2024-11-04 08:00:00", "order_value": "12.0", "status": "returned", "loaded_at": "2024-11-04 08:05:00"},
        {"order_id": "900003", "customer_id": "3", "order_ts": "2024-09-20 14:00:00", "order_value": "40.0", "status": "completed", "loaded_at": "2024-11-04 09:00:00"},
        {"order_id": "900004", "customer_id": "3", "order_ts": "2024-11-04 10:00:00", "order_value": "5.0", "status": "completed", "loaded_at": "2024-11-04 10:01:00"},
        # loaded late at an instant a view row already sums (the seed's first order)
        {"order_id": "900005", "customer_id": "1212", "order_ts": "2024-01-02 00:10:55", "order_value": "10.0", "status": "completed", "loaded_at": "2024-11-04 11:00:00"},
    ],
    "raw_support_tickets": [
        {"ticket_id": "900001", "customer_id": "7", "opened_ts": "2024-11-03 10:00:00", "priority": "high", "satisfaction": "", "loaded_at": "2024-11-03 10:05:00"},
        {"ticket_id": "900002", "customer_id": "1501", "opened_ts": "2024-11-04 10:00:00", "priority": "low", "satisfaction": "5", "loaded_at": "2024-11-04 10:02:00"},
    ],
    # login_activity_v1 goes by login time, not load time: it only picks up logins later than
    # its newest row (tests/test_windows_dbt.py shows it missing a late one; v2 does not).
    "raw_logins": [
        {"customer_id": "7", "login_ts": "2024-11-03 08:00:00", "device": "web", "loaded_at": "2024-11-03 08:10:00"},
        {"customer_id": "7", "login_ts": "2024-11-03 08:00:00", "device": "ios", "loaded_at": "2024-11-03 08:10:00"},
        {"customer_id": "1501", "login_ts": "2024-11-05 20:00:00", "device": "android", "loaded_at": "2024-11-05 20:30:00"},
    ],
}


def test_incremental_run_equals_build_from_scratch(built_project, tmp_path):
    incremental = copy_built(built_project, tmp_path / "incremental")
    scratch = copy_project(tmp_path / "scratch")
    for project in (incremental, scratch):
        for name, rows in NEW_ROWS.items():
            rewrite_seed(project, name, extra=rows)

    # Seeds, staging and the feature views only: what this test compares.
    views_only = ["build", "--select", "+path:models/features", "--resource-type", "seed", "--resource-type", "model"]
    dbt_ok(incremental, *views_only)
    dbt_ok(scratch, *views_only)

    runs = incremental / "target" / "run" / "shop" / "models" / "features"
    for view in FEATURE_VIEWS:  # incremental runs, their deletes bounded by the batch's earliest instant
        assert "and DBT_INCREMENTAL_TARGET.feature_ts >= (select min(feature_ts) from" in (runs / f"{view}.sql").read_text(), view
    # its order, and the instant 30 days later when it leaves the window
    assert query(incremental, "SELECT count(*) FROM customer_orders_v1 WHERE customer_id = 1501") == [(2,)]
    for view in FEATURE_VIEWS:
        assert table(incremental, view) == table(scratch, view), view


def test_history_strategy_needs_the_timestamp_in_the_unique_key(built_project, tmp_path):
    project = copy_built(built_project, tmp_path / "project")
    model = project / "models" / "features" / "customer_profile_v1.sql"
    model.write_text(model.read_text().replace("unique_key=['customer_id', 'feature_ts']", "unique_key=['customer_id']"))

    result = dbt(project, "run", "--select", "customer_profile")

    assert result.returncode == 1
    assert (
        "models/features/customer_profile_v1.sql: incremental_strategy featurekit_history needs unique_key = "
        "the view's keys and its timestamp column 'feature_ts', got ['customer_id']"
    ) in result.stdout
