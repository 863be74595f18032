"""featurekit on a PostgreSQL warehouse: the example shop built there by dbt-postgres, and
every result compared with the same project on DuckDB.

A throwaway server (tests/postgres_server.py) holds one database per use: the shop (built once
per session), the oracle's random tables, an empty one. Under CI=true a missing PostgreSQL
fails these tests; locally they skip with the reason.
"""

from __future__ import annotations

import json
import math
import shutil
from contextlib import closing
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity_paths as paths
from conftest import copy_project, featurekit_cli
from featurekit.macros import MacroRenderer
from featurekit.online.store import OnlineStore
from featurekit.training import with_join_plans
from online_helpers import append, history_read, online_views
from postgres_server import PASSWORD_USER
from test_point_in_time_oracle import (
    TABLES, Case, HypothesisDraw, SeededDraw, draw_case, example_labels, mismatches, oracle, output_columns,
    warehouse_rows, write_labels,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CUT = datetime(2024, 7, 1)
# The one column whose values may differ between the engines, by at most one unit in the last
# place: a sliding-window sum of doubles, which DuckDB adds as binary doubles (fsum) and
# PostgreSQL exactly in numeric from their 15-digit forms (postgres__window_aggregate).
FLOAT_SUMS = {"order_value_30d"}
ULP = 2.3e-16


def connect(server, database: str = "postgres"):
    import psycopg2

    connection = psycopg2.connect(server.dsn(database))
    connection.autocommit = True
    return connection


def create_database(server, name: str) -> None:
    with closing(connect(server)) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')


def write_profile(project: Path, server, database: str, **overrides) -> None:
    target = {"type": "postgres", "host": server.host, "port": server.port, "user": server.user, "password": "",
              "dbname": database, "schema": "shop", "threads": 2, **overrides}
    lines = "\n".join(f"      {k}: {json.dumps(v)}" for k, v in target.items())
    (project / "profiles.yml").write_text(f"shop:\n  target: pg\n  outputs:\n    pg:\n{lines}\n")


@pytest.fixture(scope="session")
def pg_project(postgres_server, tmp_path_factory) -> Path:
    """The example project built on PostgreSQL by `featurekit refresh` of every node."""
    project = copy_project(tmp_path_factory.mktemp("pg") / "project")
    create_database(postgres_server, "shop")
    write_profile(project, postgres_server, "shop")
    featurekit_cli("refresh", "--select", "shop", "--project-dir", str(project))
    return project


def test_the_shop_builds_on_postgres(pg_project):
    """Every node of the example, featurekit's macros, materializations and tests included."""
    results = json.loads((pg_project / "target" / "run_results.json").read_text())["results"]
    results = [r for r in results if not r["unique_id"].startswith("exposure.")]  # no-op: nothing to build
    assert {r["status"] for r in results} <= {"success", "pass"}, [r for r in results if r["status"] not in ("success", "pass")]
    names = {r["unique_id"].split(".")[2] for r in results}
    assert any(n.startswith("featurekit_no_future_leakage") for n in names)
    assert any(n.startswith("featurekit_unique_history") for n in names)
    assert sum(r["unique_id"].startswith("model.") for r in results) == 25
    assert sum(r["unique_id"].startswith("test.") for r in results) == 37


def test_feature_views_get_the_join_index(pg_project, postgres_server):
    """Every feature view the shop built has the index postgres__view_join descends (made by
    the project's postgres__create_indexes when dbt created the table), so train-set takes the
    per-label plan for each view without an availability column."""
    from featurekit.project import Project

    project = Project(pg_project)
    views = list(project.macros.call("feature_views").values())
    with closing(connect(postgres_server, "shop")) as connection:
        marked = with_join_plans(fetchall(connection), project.macros, views)
    assert len(marked) == 9 and all(view["join_index"] for view in marked), [v["ref"] for v in marked if not v["join_index"]]


def test_an_incremental_run_restores_the_join_index(pg_project, postgres_server, tmp_path):
    """A view without the index (as one built by an older featurekit) gets it back from the
    history strategy at its next incremental run."""
    from featurekit.project import Project

    project = broken_copy(pg_project, tmp_path, postgres_server, "shop")
    view = Project(project).macros.call("feature_views")["last_purchase_v1"]
    with closing(connect(postgres_server, "shop")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'shop.last_purchase_v1'::regclass")
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP INDEX {name}")
        assert with_join_plans(fetchall(connection), Project(project).macros, [view])[0]["join_index"] is False
        featurekit_cli("dbt", "run", "--select", "last_purchase", "--project-dir", str(project))
        assert with_join_plans(fetchall(connection), Project(project).macros, [view])[0]["join_index"] is True


def test_online_tables_advance_by_the_views_generation(postgres_server, tmp_path):
    """featurekit_history marks each view's table with a generation (its comment) on
    PostgreSQL too: the online tables advance by it, reading nothing of the views up to their
    watermark, and hold what a full build at the same as-of time holds."""
    project = copy_project(tmp_path / "project")
    create_database(postgres_server, "shop_generation")
    write_profile(project, postgres_server, "shop_generation")
    views = online_views(project)

    def build(as_of: str, *args: str) -> str:
        log = project / "logs" / "dbt.log"
        log.unlink(missing_ok=True)
        featurekit_cli("dbt", "build", "--select", "+path:models/online", "--exclude-resource-type", "test",
                       "--vars", json.dumps({"featurekit_as_of": as_of}), "--project-dir", str(project), *args)
        return log.read_text()

    def online_rows(cursor) -> dict[str, list]:
        found = {}
        for ref in views:
            cursor.execute(f"SELECT * FROM shop.online_{ref}")
            found[ref] = sorted(cursor.fetchall(), key=repr)
        return found

    build("2024-06-01 00:00:00")
    build("2024-06-02 00:00:00")  # the views' first incremental builds mark them
    append(project, "raw_orders", [{"order_id": 90001, "customer_id": 933, "order_ts": "2024-06-02 09:30:00", "order_value": 80.0, "status": "returned"}])
    append(project, "raw_support_tickets", [{"ticket_id": 90001, "customer_id": 55, "opened_ts": "2024-06-02 08:00:00", "priority": "high", "satisfaction": 2}])
    log = build("2024-06-03 00:00:00")
    assert not [ref for ref in views if history_read(log, f'"shop_generation"."shop"."{ref}"')]
    assert all(f'delete from "shop_generation"."shop"."online_{ref}" as __fk_t where exists' in log for ref in views)
    with closing(connect(postgres_server, "shop_generation")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('shop.customer_orders_v1'::regclass)")
        assert cursor.fetchall()[0][0].startswith("featurekit_history generation ")
        incremental = online_rows(cursor)
    build("2024-06-03 00:00:00", "--full-refresh")
    with closing(connect(postgres_server, "shop_generation")) as connection, connection.cursor() as cursor:
        assert online_rows(cursor) == incremental


def read_parquet(path: Path) -> tuple[list[str], list[str], list[tuple]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = con.execute(f"SELECT * FROM read_parquet('{path}')")
    return [d[0] for d in result.description], [str(d[1]) for d in result.description], result.fetchall()


def differences(columns, duck_rows, pg_rows) -> list[str]:
    problems = [] if len(duck_rows) == len(pg_rows) else [f"{len(duck_rows)} rows on DuckDB, {len(pg_rows)} on PostgreSQL"]
    for i, (a, b) in enumerate(zip(duck_rows, pg_rows)):
        for column, x, y in zip(columns, a, b):
            same = x == y or (column in FLOAT_SUMS and x is not None and y is not None and math.isclose(x, y, rel_tol=ULP))
            if not same:
                problems.append(f"row {i + 1} {column}: DuckDB {x!r}, PostgreSQL {y!r}")
    return problems


@pytest.mark.parametrize("feature_set", ["churn_model", "churn_model_v2"])
def test_train_set_equals_duckdb(built_project, pg_project, tmp_path, feature_set):
    """The same labels (rows' edges, ttl edges, before any history, unknown customers,
    duplicates, times with UTC offsets) on both engines: every row and column, and the oracle."""
    import featurekit
    from featurekit.project import Project

    views = featurekit.catalog.resolve(Project(built_project), feature_set=feature_set)["views"]
    rows = warehouse_rows(built_project, views)
    labels = example_labels(views, rows, seed=23, count=600)
    path = tmp_path / "labels.csv"
    write_labels(path, labels, zoned=True, seed=29)
    outputs = {}
    for engine, project in (("duckdb", built_project), ("postgres", pg_project)):
        outputs[engine] = tmp_path / f"{engine}.parquet"
        featurekit_cli("train-set", str(path), "--feature-set", feature_set, "-o", str(outputs[engine]),
                       "--project-dir", str(project), "-q")
    columns, duck_types, duck_rows = read_parquet(outputs["duckdb"])
    pg_columns, pg_types, pg_rows = read_parquet(outputs["postgres"])
    assert (pg_columns, pg_types) == (columns, duck_types)
    assert differences(columns, duck_rows, pg_rows) == []
    # and both are the contract (the oracle reads the DuckDB warehouse's rows)
    label_columns = ["customer_id", "label_ts", "churned", "note"]
    actual = [(r[0], r[1].replace(tzinfo=None), *r[2:]) for r in pg_rows]
    expected = oracle(views, rows, labels, label_columns, "label_ts")
    assert [p for p in mismatches(expected, actual, output_columns(views, label_columns))
            if p.split()[2].rstrip(":") not in FLOAT_SUMS] == []
    sidecar = json.loads(outputs["postgres"].with_name("postgres.parquet.featureset.json").read_text())
    assert sidecar["warehouse"].startswith("postgres 127.0.0.1:")
    # -o DIR/: the same rows, written by DuckDB into the directory
    featurekit_cli("train-set", str(path), "--feature-set", feature_set, "-o", f"{tmp_path / 'postgres_dir'}/",
                   "--project-dir", str(pg_project), "-q")
    assert read_parquet(tmp_path / "postgres_dir" / "*.parquet") == (pg_columns, pg_types, pg_rows)


@pytest.mark.parametrize("table", ["churn_labels", "extra.zoned_labels"])
def test_a_labels_table_in_postgres_gives_the_rows_of_the_label_file(built_project, pg_project, postgres_server, tmp_path, table):
    """--labels-table: the label rows joined where they are, in PostgreSQL (the seed by its dbt
    name; a table of timestamptz label times by schema.table): the rows of the seed's file on
    DuckDB, every value."""
    from featurekit.catalog import relation
    from featurekit.project import Project

    if table == "extra.zoned_labels":
        seed = relation(Project(pg_project), "churn_labels")
        with closing(connect(postgres_server, "shop")) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA IF NOT EXISTS extra; DROP TABLE IF EXISTS extra.zoned_labels; "
                           "CREATE TABLE extra.zoned_labels AS SELECT customer_id, label_ts AT TIME ZONE 'UTC' AS label_ts, "
                           f"churned FROM {seed}")
    on_duckdb, on_postgres = tmp_path / "duckdb.parquet", tmp_path / "postgres.parquet"
    featurekit_cli("train-set", str(built_project / "seeds" / "churn_labels.csv"), "--feature-set", "churn_model",
                   "-o", str(on_duckdb), "--project-dir", str(built_project), "-q")
    featurekit_cli("train-set", "--labels-table", table, "--feature-set", "churn_model", "-o", str(on_postgres),
                   "--project-dir", str(pg_project), "-q")
    columns, _, duck_rows = read_parquet(on_duckdb)
    pg_columns, _, pg_rows = read_parquet(on_postgres)
    assert pg_columns == columns

    def by_label(rows):  # a table's rows come in label time and key order; zoned times as UTC
        rows = [(r[0], r[1].replace(tzinfo=None), *r[2:]) for r in rows]
        return sorted(rows, key=lambda r: (r[1], r[0], r[2]))

    assert len(pg_rows) == 6323
    assert differences(columns, by_label(duck_rows), by_label(pg_rows)) == []


def snapshot_tables(online_dir: Path) -> tuple[dict, dict]:
    current = (online_dir / "CURRENT").read_text().strip()
    manifest = json.loads((online_dir / f"{current}.json").read_text())
    con = duckdb.connect(str(online_dir / f"{current}.duckdb"), read_only=True)
    try:
        tables = {}
        for ref in manifest["views"]:
            result = con.execute(f'SELECT * FROM "{ref}" ORDER BY ALL')
            tables[ref] = ([(d[0], str(d[1])) for d in result.description], result.fetchall())
        return tables, manifest
    finally:
        con.close()


@pytest.mark.parametrize("as_of", [None, CUT.isoformat() + "Z"], ids=["dbt-built", "as-of"])
def test_published_snapshots_equal_duckdb(built_project, pg_project, tmp_path, as_of):
    snapshots = {}
    for engine, project in (("duckdb", built_project), ("postgres", pg_project)):
        args = ["--as-of", as_of] if as_of else []
        featurekit_cli("publish", "--project-dir", str(project), "--online-dir", str(tmp_path / engine), "-q", *args)
        snapshots[engine] = snapshot_tables(tmp_path / engine)
    (duck, duck_manifest), (pg, pg_manifest) = snapshots["duckdb"], snapshots["postgres"]
    assert sorted(pg) == sorted(duck)
    for ref in duck:
        assert pg[ref][0] == duck[ref][0], ref
        columns = [c for c, _ in duck[ref][0]]
        assert differences(columns, duck[ref][1], pg[ref][1]) == [], ref
        assert len(duck[ref][1]) > 0
    def portable(feature_set: dict) -> dict:  # relation names are the engine's
        return dict(feature_set, views=[dict(view, relation=None) for view in feature_set["views"]])

    for name, record in duck_manifest["feature_sets"].items():
        assert portable(pg_manifest["feature_sets"][name]) == portable(record)
    for ref, record in duck_manifest["views"].items():
        same = {k: v for k, v in record.items() if k not in ("as_of", "relation")}
        assert {k: v for k, v in pg_manifest["views"][ref].items() if k not in ("as_of", "relation")} == same


def test_parity_of_a_log_served_from_a_postgres_snapshot(pg_project, tmp_path):
    """Served from a snapshot filled from PostgreSQL as of CUT, replayed on PostgreSQL."""
    online = tmp_path / "online"
    featurekit_cli("publish", "--project-dir", str(pg_project), "--online-dir", str(online), "--as-of", CUT.isoformat() + "Z", "-q")
    lookups = paths.requests(pg_project, 600, seed=5, start=CUT, days=14)
    store = OnlineStore(online, log_dir=tmp_path / "log")
    try:
        for customer_id, request_ts in lookups.itertuples(index=False):
            store.get(paths.FEATURE_SET, {"customer_id": int(customer_id)}, request_ts=request_ts.to_pydatetime())
    finally:
        store.close()
    result = featurekit_cli("parity", str(tmp_path / "log"), "--project-dir", str(pg_project), "--online-dir", str(online),
                            "--json", "-q")
    [feature_set] = json.loads(result.stdout)["feature_sets"]
    assert feature_set["rows"] == len(lookups)
    for column in feature_set["columns"]:
        assert column["mismatches"] == column["missing_served"] == column["missing_replayed"] == 0, column
        assert column["compared"] > 0


def test_monitoring_and_lock_on_postgres(pg_project):
    report = json.loads(featurekit_cli("freshness", "--project-dir", str(pg_project), "--now", "2024-11-01T00:00:00Z",
                                       "--json").stdout)
    assert report["status"] == "ok"
    assert all(r["warehouse"]["newest_feature_ts"] for r in report["views"])
    described = featurekit_cli("describe", "customer_orders_v1", "--project-dir", str(pg_project)).stdout
    assert "customer_orders_v1" in described
    featurekit_cli("lock", "--project-dir", str(pg_project))
    assert "9 released version(s) unchanged" in featurekit_cli("check", "--project-dir", str(pg_project)).stdout


# ---------------------------------------------------------------------------------------------
# Warehouse errors: one line naming the target and what to do


def broken_copy(pg_project: Path, tmp_path: Path, server, database: str, **overrides) -> Path:
    project = tmp_path / "project"
    shutil.copytree(pg_project, project, symlinks=True,
                    ignore=lambda directory, names: ["online", "logs"] if Path(directory) == pg_project else [])
    write_profile(project, server, database, **overrides)
    return project


def error_line(project: Path, tmp_path: Path) -> str:
    labels = tmp_path / "labels.csv"
    labels.write_text("customer_id,label_ts\n3,2024-05-01\n")
    out = tmp_path / "train.parquet"
    result = featurekit_cli("train-set", str(labels), "--feature-set", "churn_model", "-o", str(out),
                            "--project-dir", str(project), check=False)
    assert result.returncode == 2, result.stderr
    assert not out.exists()
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.stderr
    return lines[-1]


def test_connection_refused_is_one_line(pg_project, postgres_server, tmp_path):
    from postgres_server import _free_port

    project = broken_copy(pg_project, tmp_path, postgres_server, "shop", port=_free_port())
    line = error_line(project, tmp_path)
    assert "cannot connect to the PostgreSQL warehouse of target pg of profile shop" in line
    assert "check that the server runs" in line


def test_wrong_password_is_one_line(pg_project, postgres_server, tmp_path):
    with closing(connect(postgres_server)) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {PASSWORD_USER}")
        cursor.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD 'right'")
    project = broken_copy(pg_project, tmp_path, postgres_server, "shop", user=PASSWORD_USER, password="wrong")
    line = error_line(project, tmp_path)
    assert "cannot connect to the PostgreSQL warehouse of target pg" in line
    assert "password authentication failed" in line


def test_views_not_built_is_one_line(pg_project, postgres_server, tmp_path):
    """A feature view and an online table missing from the warehouse (renamed away for the
    test, then restored)."""
    project = broken_copy(pg_project, tmp_path, postgres_server, "shop")
    renames = [("customer_profile_v1", "customer_profile_v1_away"), ("online_customer_profile_v1", "online_away")]
    with closing(connect(postgres_server, "shop")) as connection, connection.cursor() as cursor:
        for table, away in renames:
            cursor.execute(f"ALTER TABLE shop.{table} RENAME TO {away}")
        try:
            line = error_line(project, tmp_path)
            assert line == ("Error: feature view customer_profile_v1 is not built in the warehouse: "
                            "run `featurekit refresh` (or `dbt build`)")
            result = featurekit_cli("publish", "--project-dir", str(project), check=False)
            assert result.returncode == 2 and "Traceback" not in result.stderr
            [line] = [l for l in result.stderr.splitlines() if l.startswith("Error: ")]
            assert 'relation "shop.online_customer_profile_v1" does not exist' in line
            assert "target pg of profile shop" in line and line.endswith("run `featurekit refresh` (or `dbt build`)")
        finally:
            for table, away in renames:
                cursor.execute(f"ALTER TABLE shop.{away} RENAME TO {table}")


def test_a_view_repeating_an_instant_is_one_line(pg_project, postgres_server, tmp_path):
    """A view that breaks the history contract (a repeated (key, feature_ts), inserted for the
    test, then removed) gives an error, not a label with two rows."""
    project = broken_copy(pg_project, tmp_path, postgres_server, "shop")
    with closing(connect(postgres_server, "shop")) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO shop.last_purchase_v1 SELECT * FROM shop.last_purchase_v1 "
                       "WHERE customer_id = 3 AND feature_ts < '2024-05-01' ORDER BY feature_ts DESC LIMIT 1")
        try:
            line = error_line(project, tmp_path)
        finally:
            cursor.execute("DELETE FROM shop.last_purchase_v1 WHERE ctid IN (SELECT max(ctid) FROM shop.last_purchase_v1 "
                           "GROUP BY customer_id, feature_ts HAVING count(*) > 1)")
    assert line.startswith("Error: the join gave ") and line.endswith(
        " rows for the 1 label rows of labels.csv: a feature view repeats a (key, feature timestamp); its "
        "featurekit.unique_history test names it (dbt test); fix the view and rebuild it")


# ---------------------------------------------------------------------------------------------
# The point-in-time oracle, on PostgreSQL


PG_TYPES = {"BIGINT": "bigint", "TIMESTAMP": "timestamp", "TIMESTAMPTZ": "timestamptz", "DOUBLE": "double precision",
            "VARCHAR": "text", "BOOLEAN": "boolean"}


@pytest.fixture(scope="module")
def oracle_pg(postgres_server):
    create_database(postgres_server, "oracle")
    connection = connect(postgres_server, "oracle")
    with connection.cursor() as cursor:
        cursor.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def postgres_renderer(built_project) -> MacroRenderer:
    manifest = json.loads((built_project / "target" / "manifest.json").read_text())
    return MacroRenderer(manifest, "postgres")


def load_case_pg(connection, case: Case) -> None:
    from psycopg2.extras import execute_values

    label_types = {"rid": "BIGINT", "k1": "BIGINT", "k2": "VARCHAR", "label_ts": "TIMESTAMPTZ" if case.zoned else "TIMESTAMP",
                   "target": "BIGINT"}
    with connection.cursor() as cursor:
        for name, columns, rows in [*((ref, TABLES[ref], case.rows[ref]) for ref in TABLES), ("labels", label_types, case.labels)]:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TABLE {name} ({', '.join(f'{c} {PG_TYPES[t]}' for c, t in columns.items())})")
            if rows:
                execute_values(cursor, f"INSERT INTO {name} VALUES %s", [tuple(r[c] for c in columns) for r in rows])


def fetchall(connection):
    def run(sql):
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    return run


def run_case_pg(connection, renderer, case: Case, plan: str) -> list[str]:
    """The case joined by the sorted pass (no index: default__view_join) or, with each view's
    table indexed on (keys, feature time), by the per-label index descent (postgres__view_join)
    where the view has no availability column."""
    load_case_pg(connection, case)
    if plan == "indexed":
        with connection.cursor() as cursor:
            for spec in case.specs:
                cursor.execute(f"CREATE INDEX ON {spec['relation']} ({', '.join([*spec['keys'], spec['timestamp']])})")
    views = with_join_plans(fetchall(connection), renderer, case.specs)
    assert [v["join_index"] for v in views] == [plan == "indexed"] * len(views)
    sql = renderer.call("point_in_time_join", "labels", views, timestamp_column="label_ts",
                        label_columns=case.label_columns, row_column=case.row_column)
    assert ("lateral" in sql) == (plan == "indexed" and any(not v["available_at"] for v in views))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        columns = [d.name for d in cursor.description]
        actual = cursor.fetchall()
    if columns != output_columns(case.specs, case.label_columns):
        return [f"columns {columns}"]
    return mismatches(oracle(case.specs, case.rows, case.labels, case.label_columns, "label_ts"), actual, columns)


PLANS = ["sorted", "indexed"]


@pytest.mark.parametrize("plan", PLANS)
def test_seeded_random_cases_match_oracle_on_postgres(oracle_pg, postgres_renderer, plan):
    failures = {}
    for seed in range(80):
        problems = run_case_pg(oracle_pg, postgres_renderer, draw_case(SeededDraw(seed)), plan)
        if problems:
            failures[seed] = problems[:5]
    assert failures == {}


@pytest.mark.parametrize("plan", PLANS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_cases_match_oracle_on_postgres(oracle_pg, postgres_renderer, plan, data):
    assert run_case_pg(oracle_pg, postgres_renderer, draw_case(HypothesisDraw(data)), plan) == []
