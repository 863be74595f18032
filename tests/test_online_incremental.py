"""Online tables built incrementally (featurekit_online_materialization.sql) hold exactly the
rows a full build gives (online_rows over the whole view), through new data, late
data with old timestamps, an advancing as-of time and a feature view dropped and rebuilt;
and `featurekit refresh` builds only the serving path."""

from __future__ import annotations

import csv
import json

import duckdb
import pytest

from featurekit.catalog import feature_views
from featurekit.monitor.freshness import newest_data_sql
from featurekit.project import Project
from conftest import featurekit_cli
from online_helpers import LOADED, append, copy_built_project, history_read, online_views

@pytest.fixture
def project(built_project, tmp_path):
    return copy_built_project(built_project, tmp_path / "project")


def build_online(project, as_of: str, check: bool = True):
    """The serving path at `as_of`, as `featurekit refresh` builds it; returns the online
    tables dbt built incrementally (from dbt's log of this run)."""
    log = project / "logs" / "dbt.log"
    log.unlink(missing_ok=True)
    result = featurekit_cli(
        "dbt", "build", "--select", "+path:models/online", "--exclude-resource-type", "test",
        "--vars", json.dumps({"featurekit_as_of": as_of}), "--project-dir", str(project), check=check,
    )
    text = log.read_text()
    return result, {ref for ref in online_views(project) if f'delete from "warehouse"."main"."online_{ref}" as __fk_t where exists' in text}


def assert_equal_to_full_build(project, as_of: str) -> None:
    """Every online table equals online_rows over its whole view at `as_of`."""
    built = Project(project)
    views = feature_views(built)
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        for ref in online_views(project):
            full = built.macros.call("online_rows", views[ref], f"cast('{as_of}' as timestamp)")
            table = f"online_{ref}"
            differ = con.sql(
                f"SELECT count(*) FROM ((SELECT * FROM {table} EXCEPT ALL ({full})) "
                f"UNION ALL (({full}) EXCEPT ALL SELECT * FROM {table}))"
            ).fetchall()[0][0]
            assert differ == 0, f"{table} differs from a full build at {as_of} in {differ} rows"
            assert con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0] > 0
    finally:
        con.close()


@pytest.mark.slow
def test_incremental_builds_equal_full_builds(project):
    # An earlier as-of time than the session build's: every table is rebuilt in full.
    _, incremental = build_online(project, "2024-06-01 00:00:00")
    assert incremental == set()
    assert_equal_to_full_build(project, "2024-06-01 00:00:00")

    # New loads: a late order with an old timestamp (inside the 30-day window at the next
    # as-of), orders between the two as-of times and of a new customer, a login, a plan
    # change and a ticket. The as-of time advances past window expiries too.
    append(project, "raw_orders", [
        {"order_id": 90001, "customer_id": 1212, "order_ts": "2024-05-20 10:00:00", "order_value": 12.5, "status": "completed", "loaded_at": LOADED},
        {"order_id": 90002, "customer_id": 933, "order_ts": "2024-06-10 09:30:00", "order_value": 80.0, "status": "returned", "loaded_at": LOADED},
        {"order_id": 90003, "customer_id": 5001, "order_ts": "2024-06-11 12:00:00", "order_value": 20.0, "status": "completed", "loaded_at": LOADED},
    ])
    append(project, "raw_logins", [{"customer_id": 426, "login_ts": "2024-11-01 08:00:00", "device": "ios"}])
    append(project, "raw_customers", [{"customer_id": 1, "valid_from": "2024-06-05 00:00:00", "region": "west", "plan": "premium", "loaded_at": LOADED}])
    append(project, "raw_support_tickets", [{"ticket_id": 90001, "customer_id": 55, "opened_ts": "2024-06-12 08:00:00", "priority": "high", "satisfaction": 2, "loaded_at": LOADED}])
    _, incremental = build_online(project, "2024-06-15 00:00:00")
    assert incremental == set(online_views(project))
    assert_equal_to_full_build(project, "2024-06-15 00:00:00")
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM online_customer_orders_v1 WHERE customer_id = 5001").fetchall()[0][0] > 0

    # A login recorded as loaded before the view's watermark (against the load contract) is
    # only taken in by dropping the view and building it again; its online table sees the
    # rebuilt history and is rebuilt in full, the others advance.
    append(project, "raw_logins", [{"customer_id": 426, "login_ts": "2024-06-18 08:00:00", "device": "web", "loaded_at": "2024-06-18 09:00:00"}])
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE login_activity_v1")
    _, incremental = build_online(project, "2024-06-20 00:00:00")
    assert incremental == set(online_views(project)) - {"login_activity_v1"}
    assert_equal_to_full_build(project, "2024-06-20 00:00:00")


@pytest.mark.slow
def test_a_view_built_again_from_scratch_rebuilds_its_online_table(project):
    """A view built again from scratch may restate values under the same load times (a
    ticket's satisfaction corrected here), which no count of load times sees. featurekit_history
    marks each view's table with a generation that a new table loses: the online table of
    the rebuilt view is rebuilt in full, the others advance without reading their history
    up to the watermark."""
    build_online(project, "2024-06-01 00:00:00")  # the views' incremental builds mark them
    _, incremental = build_online(project, "2024-06-02 00:00:00")
    assert incremental == set(online_views(project))
    log = (project / "logs" / "dbt.log").read_text()
    assert not [ref for ref in online_views(project) if history_read(log, f'"warehouse"."main"."{ref}"')]
    built = Project(project)
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        for ref, view in feature_views(built).items():  # what publish records, kept without reading the history
            newest = newest_data_sql(built.macros, view, "cast('2024-06-02 00:00:00' as timestamp)", strictly_before=True)
            assert con.sql(f"SELECT newest_data FROM online_{ref}__fk_state").fetchall() == (con.sql(newest).fetchall() if view["windowed"] else [(None,)]), ref

    path = project / "seeds" / "raw_support_tickets.csv"
    with open(path) as f:
        rows = list(csv.DictReader(f))
    latest = max((r for r in rows if r["opened_ts"] < "2024-06-01"), key=lambda r: r["opened_ts"])
    latest["satisfaction"] = str(int(latest["satisfaction"]) % 5 + 1)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:  # feature views never take --full-refresh
        con.execute("DROP TABLE support_tickets_v1")

    _, incremental = build_online(project, "2024-06-03 00:00:00")
    assert incremental == set(online_views(project)) - {"support_tickets_v1"}
    assert_equal_to_full_build(project, "2024-06-03 00:00:00")
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        held = con.sql(f"SELECT count(*) FROM online_support_tickets_v1 WHERE customer_id = {latest['customer_id']} "
                       f"AND __fk_feature_ts = TIMESTAMP '{latest['opened_ts']}'").fetchall()[0][0]
    assert held == 1  # the restated ticket's row is served: a stale one would have differed above


@pytest.mark.slow
def test_a_view_whose_comment_dbt_writes_is_proven_by_reading(project):
    """dbt's persist_docs writes a view's description into its table's comment after every
    build, over featurekit_history's generation: the online tables then prove their views
    unchanged by reading the load times up to the watermark, and still advance."""
    edit(project / "dbt_project.yml", "      +full_refresh: false\n", "      +full_refresh: false\n      +persist_docs: {relation: true}\n")
    build_online(project, "2024-06-01 00:00:00")
    append(project, "raw_orders", [{"order_id": 90001, "customer_id": 933, "order_ts": "2024-06-01 09:30:00", "order_value": 80.0, "status": "returned"}])
    _, incremental = build_online(project, "2024-06-02 00:00:00")
    assert incremental == set(online_views(project))
    log = (project / "logs" / "dbt.log").read_text()
    assert all(history_read(log, f'"warehouse"."main"."{ref}"') for ref in online_views(project))
    assert_equal_to_full_build(project, "2024-06-02 00:00:00")
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        comment = con.sql("SELECT comment FROM duckdb_tables() WHERE table_name = 'customer_orders_v1'").fetchall()[0][0]
    assert comment and not comment.startswith("featurekit_history")


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


@pytest.mark.slow
def test_a_changed_view_definition_rebuilds_its_online_table(project):
    """A view rebuilt with new logic over the same loads has the same load times and new
    values: its online table must be rebuilt in full, whether the view's SQL or a macro it
    reaches (the DuckDB implementation of a dispatched one, one called in a branch that a
    parse does not take) changed."""
    build_online(project, "2024-06-01 00:00:00")
    edit(project / "models" / "features" / "last_purchase_v1.sql", "sum(order_value) as", "2 * sum(order_value) as")
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE last_purchase_v1")
    _, incremental = build_online(project, "2024-06-02 00:00:00")
    assert incremental == set(online_views(project)) - {"last_purchase_v1"}
    assert_equal_to_full_build(project, "2024-06-02 00:00:00")

    windowed = {ref for ref, view in feature_views(Project(project)).items() if view["windowed"]}
    edit(project / "dbt_packages" / "featurekit" / "macros" / "windows" / "window_history.sql",
         "{{ seconds * 1000000 - 1 }} preceding", "{{ seconds * 1000000 }} preceding")
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE customer_orders_v1")
    _, incremental = build_online(project, "2024-06-03 00:00:00")
    assert "customer_orders_v1" in windowed and incremental == set(online_views(project)) - windowed
    assert_equal_to_full_build(project, "2024-06-03 00:00:00")

    # A macro called only when the view builds incrementally counts too: last_purchase_v1,
    # support_tickets_v1 and customer_profile_v1 call featurekit.newest in their
    # `{% if is_incremental() %}` branch (the windowed views through window_events).
    edit(project / "dbt_packages" / "featurekit" / "macros" / "util" / "newest.sql", "desc limit 1", "desc nulls last limit 1")
    _, incremental = build_online(project, "2024-06-04 00:00:00")
    assert incremental == set()
    assert_equal_to_full_build(project, "2024-06-04 00:00:00")


@pytest.mark.slow
def test_a_newly_documented_feature_column_rebuilds_its_online_table(project):
    """Online rows carry every column a view's features are computed from: documenting one
    more (a YAML change, the view's SQL untouched) changes their columns, so the online
    table is rebuilt in full; an incremental build would insert rows of another shape."""
    build_online(project, "2024-06-01 00:00:00")
    edit(project / "models" / "features" / "last_purchase.yml", "    versions:\n",
         "      - name: loaded_at\n        description: When the purchase was loaded.\n    versions:\n")
    _, incremental = build_online(project, "2024-06-02 00:00:00")
    assert incremental == set(online_views(project)) - {"last_purchase_v1"}
    assert_equal_to_full_build(project, "2024-06-02 00:00:00")
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        assert "loaded_at" in con.sql("SELECT * FROM online_last_purchase_v1 LIMIT 0").columns


@pytest.mark.slow
def test_a_repeated_key_and_instant_in_new_rows_fails_the_build(project):
    """A view build that writes one key and instant twice (delete+insert replaces older rows,
    not repeats within what it inserts)."""
    build_online(project, "2024-06-01 00:00:00")
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute(f"INSERT INTO last_purchase_v1 SELECT 7, TIMESTAMP '2024-11-01 10:00:00', TIMESTAMP '2024-11-01 10:00:00', v, TIMESTAMP '{LOADED}' FROM (VALUES (1.0), (2.0)) AS t(v)")
    result, _ = build_online(project, "2024-06-01 00:00:00", check=False)
    assert result.returncode == 1
    assert "last_purchase_v1: (customer_id, feature_ts) = " in result.stdout and "occurs 2 times" in result.stdout


@pytest.mark.slow
def test_refresh_builds_the_serving_path_only(project):
    featurekit_cli("refresh", "--project-dir", str(project))
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    built = {r["unique_id"].split(".")[-1] if r["unique_id"].startswith("model.") else r["unique_id"] for r in results}
    assert {f"online_{ref}" for ref in online_views(project)} <= built
    assert not {"churn_model_training", "churn_model_v2_training"} & built
    assert not [r for r in results if r["unique_id"].startswith("test.")]
    assert all(r["status"] == "success" for r in results)
