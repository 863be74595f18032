"""`featurekit freshness`: SLA thresholds at their exact edges with a controlled clock, on the
built example warehouse and its published snapshot."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import pytest

from conftest import featurekit_cli
from featurekit.errors import FeaturekitError
from featurekit.monitor.freshness import freshness_sla, freshness_status
from featurekit.project import Project
from online_helpers import copy_built_project

US = timedelta(microseconds=1)
VIEW = "customer_orders_v1"  # warn_after 1 day, error_after 3 days


def newest(project, view=VIEW, where="loaded_at IS NOT NULL") -> datetime:
    """The newest feature_ts of the rows matching `where` (by default a window history's
    event rows: those that record data)."""
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT max(feature_ts) FROM {view} WHERE {where}").fetchall()[0][0]
    finally:
        con.close()


def freshness(project, *args, code=None):
    result = featurekit_cli("freshness", "--project-dir", str(project), *args, check=False)
    if code is not None:
        assert result.returncode == code, result.stdout + result.stderr
    return result


def at(t: datetime) -> str:
    return t.isoformat() + "Z"


@pytest.mark.parametrize(
    "after, strict, status, code",
    [
        (timedelta(days=1), False, "ok", 0),  # exactly warn_after: not yet stale
        (timedelta(days=1) + US, False, "warn", 0),  # warnings do not fail ...
        (timedelta(days=1) + US, True, "warn", 1),  # ... unless --strict
        (timedelta(days=3), False, "warn", 0),  # exactly error_after: still a warning
        (timedelta(days=3) + US, False, "error", 1),
    ],
)
def test_thresholds_at_their_edges(built_project, after, strict, status, code):
    newest_ts = newest(built_project)
    now = newest_ts + after
    result = freshness(built_project, VIEW, "--json", "--now", at(now), *(["--strict"] if strict else []), code=code)
    view = json.loads(result.stdout)["views"][0]
    assert view["view"] == VIEW
    assert view["warehouse"]["newest_feature_ts"] == newest_ts.isoformat() + "+00:00"
    assert view["warehouse"]["age_seconds"] == after.total_seconds()
    assert view["warehouse"]["status"] == status
    assert view["warehouse"]["stale"] == (status != "ok")
    if code:
        assert VIEW in result.stderr


def test_table_lists_every_view_with_its_sla(built_project):
    project = Project(built_project)
    # an hour after the newest event (windowed views also hold rows dated later: expiries)
    result = freshness(built_project, "--now", at(newest(built_project, "last_purchase_v1") + timedelta(hours=1)), code=0)
    lines = result.stdout.splitlines()
    for ref, view in project.macros.call("feature_views").items():
        row = next(line for line in lines if line.startswith(ref + " "))
        assert view["freshness"]["warn_after"] in row and view["freshness"]["error_after"] in row
    assert "online snapshot" in result.stdout


def test_future_dated_rows_are_not_data_yet(built_project, tmp_path):
    project = copy_built_project(built_project, tmp_path / "project")
    newest_ts = newest(project)
    con = duckdb.connect(str(project / "warehouse.duckdb"))
    try:  # an order recorded ahead of time, 10 days after the newest one
        con.execute(
            f"INSERT INTO {VIEW} (customer_id, feature_ts, orders_30d, order_value_30d, loaded_at) VALUES (1, ?, 1, 9.5, ?)",
            [newest_ts + timedelta(days=10), newest_ts],
        )
    finally:
        con.close()
    view = json.loads(freshness(project, VIEW, "--json", "--now", at(newest_ts + timedelta(days=2))).stdout)["views"][0]
    assert view["warehouse"]["newest_feature_ts"] == newest_ts.isoformat() + "+00:00"
    assert view["warehouse"]["status"] == "warn"
    later = newest_ts + timedelta(days=10, hours=1)
    view = json.loads(freshness(project, VIEW, "--json", "--now", at(later)).stdout)["views"][0]
    assert view["warehouse"]["newest_feature_ts"] == (newest_ts + timedelta(days=10)).isoformat() + "+00:00"
    assert view["warehouse"]["status"] == "ok"


def test_window_expiry_rows_do_not_make_a_stopped_pipeline_look_fresh(built_project):
    """customer_orders_v1's history has a row 30 days after each order, when it leaves the
    window; such rows are due without any new order, so they are not new data."""
    newest_event = newest(built_project)
    expiry = newest(built_project, VIEW, "loaded_at IS NULL")
    assert expiry > newest_event + timedelta(days=3)  # the pipeline stopped long before it
    report = json.loads(freshness(built_project, VIEW, "--json", "--now", at(expiry + US), code=1).stdout)
    warehouse = report["views"][0]["warehouse"]
    assert warehouse["newest_feature_ts"] == newest_event.isoformat() + "+00:00"
    assert warehouse["status"] == "error"


def test_availability_column_bounds_what_is_known(built_project):
    """customer_profile_v1 declares available_at: a row loaded after "now" is not data yet."""
    late = newest(built_project, "customer_profile_v1", "available_at > feature_ts + INTERVAL 1 HOUR")
    now = late + timedelta(seconds=1)  # that row is recorded but not loaded yet
    expected = newest(built_project, "customer_profile_v1", f"available_at <= TIMESTAMP '{now}'")
    assert expected != newest(built_project, "customer_profile_v1", f"feature_ts <= TIMESTAMP '{now}'")
    report = json.loads(freshness(built_project, "customer_profile_v1", "--json", "--now", at(now)).stdout)
    assert report["views"][0]["warehouse"]["newest_feature_ts"] == expected.isoformat() + "+00:00"


def test_online_snapshot_older_than_the_warehouse_fails(built_project, tmp_path):
    """A snapshot published as of a week before the newest data: the warehouse is fresh, the
    served data is not, and that is an error."""
    project = copy_built_project(built_project, tmp_path / "project")
    newest_ts = newest(project)
    as_of = newest_ts - timedelta(days=7)
    featurekit_cli("publish", "--project-dir", str(project), "--as-of", at(as_of), "-q")
    result = freshness(project, VIEW, "--json", "--now", at(newest_ts + timedelta(hours=1)), code=1)
    report = json.loads(result.stdout)
    view = report["views"][0]
    assert view["warehouse"]["status"] == "ok"
    assert view["online"]["status"] == "error"
    assert datetime.fromisoformat(view["online"]["newest_feature_ts"]).replace(tzinfo=None) < as_of
    assert view["online"]["newest_feature_ts"] == newest(project, VIEW, f"loaded_at IS NOT NULL AND feature_ts < TIMESTAMP '{as_of}'").isoformat() + "+00:00"
    assert report["snapshot"]["as_of"].startswith(as_of.isoformat())


@pytest.mark.parametrize(
    "age, status",
    [(None, "error"), (timedelta(0), "ok"), (timedelta(hours=2), "ok"), (timedelta(hours=2) + US, "warn"),
     (timedelta(hours=5), "warn"), (timedelta(hours=5) + US, "error")],
)
def test_freshness_status_for_the_online_store(built_project, age, status):
    """The function OnlineStore and /healthz can call: SLA parsed once by the macro, then any age judged."""
    macros = Project(built_project).macros
    sla = freshness_sla(macros, {"ref": "v_v1", "freshness": {"warn_after": "2 hours", "error_after": "5 hours"}})
    assert (sla["warn_after_seconds"], sla["error_after_seconds"]) == (7200, 18000)
    now = datetime(2024, 5, 1, 12)
    result = freshness_status(sla, None if age is None else now - age, now)
    assert result == {"age_seconds": None if age is None else age.total_seconds(), "status": status, "stale": status != "ok"}


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"warn_after": "1 fortnight"}, "v_v1: config.meta.featurekit.freshness.warn_after: duration '1 fortnight'"),
        ({"warn_afterr": "1 day"}, "unknown setting 'warn_afterr'"),
        ({"warn_after": "3 days", "error_after": "1 day"}, "warn_after (3 days) is longer than error_after (1 day)"),
    ],
)
def test_bad_sla_is_reported_with_the_view(built_project, declared, message):
    with pytest.raises(FeaturekitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        freshness_sla(Project(built_project).macros, {"ref": "v_v1", "freshness": declared})


def test_only_warn_after_set(built_project):
    sla = freshness_sla(Project(built_project).macros, {"ref": "v_v1", "freshness": {"warn_after": "1 hour"}})
    now = datetime(2024, 5, 1)
    assert freshness_status(sla, now - timedelta(days=30), now)["status"] == "warn"
    assert freshness_status(sla, None, now)["status"] == "warn"
    assert freshness_status(freshness_sla(Project(built_project).macros, {"ref": "v_v1"}), None, now)["status"] == "ok"


def test_unknown_view_and_bad_now(built_project):
    result = freshness(built_project, "nope_v1", code=2)
    assert "unknown feature view 'nope_v1'" in result.stderr
    result = freshness(built_project, "--now", "yesterday", code=2)
    assert "--now 'yesterday' is not a timestamp" in result.stderr
