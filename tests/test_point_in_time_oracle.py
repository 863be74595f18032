"""The point-in-time join against a brute-force oracle on randomized data.

The oracle is the contract of README "Point-in-time semantics" written as plain Python over
the raw rows: candidates recorded (or, with an availability column, available) strictly before
t; the greatest feature timestamp wins; a row older than the ttl is missing; request-time
features are whole units elapsed (floor); fill replaces what is missing and nulls.

The join under test is the SQL rendered by featurekit.macros.MacroRenderer from the macros of
a real dbt manifest, for both the duckdb__ (ASOF) and the portable default__ implementation,
run on a real DuckDB file. The public path (featurekit.training_set and the CLI) is checked
against the same oracle over the built example warehouse.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featurekit
from featurekit.macros import MacroRenderer
from featurekit.project import Project
from conftest import ADAPTERS, featurekit_cli

EPOCH = datetime(2024, 1, 1)
US = timedelta(microseconds=1)
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


# ---------------------------------------------------------------------------------------------
# The oracle


def utc_naive(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def oracle_view(view: dict, history: dict[tuple, list[dict]], label: dict, t: datetime | None) -> list:
    """One view's output columns for one label row: its features, then <view>__feature_ts.
    `history` holds the view's raw rows by key."""
    cutoff = view["available_at"] or view["timestamp"]
    best = None
    if t is not None:
        candidates = [r for r in history.get(tuple(label[k] for k in view["keys"]), []) if r[cutoff] < t]
        best = max(candidates, key=lambda r: r[view["timestamp"]], default=None)
    if best is not None and view["ttl_seconds"] and t - best[view["timestamp"]] > timedelta(seconds=view["ttl_seconds"]):
        best = None
    values = []
    for feature in view["features"]:
        value = None if best is None else best[feature["source"]]
        if value is not None and feature["kind"] == "request_time":
            value = (t - value) // timedelta(seconds=feature["unit_seconds"])
        values.append(feature["fill"] if value is None else value)
    values.append(None if best is None else best[view["timestamp"]])
    return values


def by_key(view: dict, rows: list[dict]) -> dict[tuple, list[dict]]:
    """Rows grouped by key (a view's keys are never null, so a null label key finds nothing)."""
    grouped: dict[tuple, list[dict]] = {}
    for row in rows:
        grouped.setdefault(tuple(row[k] for k in view["keys"]), []).append(row)
    return grouped


def oracle(views: list[dict], rows: dict[str, list[dict]], labels: list[dict], label_columns, timestamp_column):
    histories = {view["ref"]: by_key(view, rows[view["ref"]]) for view in views}
    out = []
    for label in labels:
        t = label[timestamp_column]
        t = None if t is None else utc_naive(t)
        row = [label[c] for c in label_columns]
        for view in views:
            row += oracle_view(view, histories[view["ref"]], label, t)
        out.append(tuple(row))
    return out


def output_columns(views, label_columns):
    columns = list(label_columns)
    for view in views:
        columns += [f["name"] for f in view["features"]] + [view["ref"] + "__feature_ts"]
    return columns


def mismatches(expected, actual, columns) -> list[str]:
    problems = []
    if len(expected) != len(actual):
        problems.append(f"{len(expected)} rows expected, {len(actual)} returned")
    for i, (want, got) in enumerate(zip(expected, actual)):
        for column, w, g in zip(columns, want, got):
            if w != g or type(w) is bool and type(g) is not bool:
                problems.append(f"row {i + 1} {column}: oracle {w!r}, join {g!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# Randomized feature tables and labels


class SeededDraw:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options):
        return self.rng.choice(list(options))


class HypothesisDraw:
    def __init__(self, data):
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def choice(self, options):
        return self.data.draw(st.sampled_from(list(options)))


def feature(name, source=None, fill=None, unit=None):
    if unit:
        return {"name": name, "kind": "request_time", "source": source, "unit": unit, "unit_seconds": UNITS[unit], "fill": fill}
    return {"name": name, "kind": "column", "source": source or name, "fill": fill}


def view_spec(ref, keys, timestamp, features, available_at=None, ttl_seconds=None, windowed=False):
    """A view spec of the shape view_spec returns (test_view_spec_shape checks it)."""
    return {
        "ref": ref,
        "name": ref,
        "version": None,
        "latest_version": None,
        "unique_id": f"model.oracle.{ref}",
        "relation": ref,
        "entity": "thing",
        "keys": keys,
        "timestamp": timestamp,
        "available_at": available_at,
        "ttl": f"{ttl_seconds} seconds" if ttl_seconds else None,
        "ttl_seconds": ttl_seconds,
        "windowed": windowed,
        "freshness": {},
        "owner": None,
        "description": "",
        "features": features,
    }


# Column name -> SQL type of each random table; keys k1 (and k2 for the composite view).
TABLES = {
    "plain": {"k1": "BIGINT", "feature_ts": "TIMESTAMP", "x": "DOUBLE", "s": "VARCHAR", "seen_ts": "TIMESTAMP"},
    "pair": {"k1": "BIGINT", "k2": "VARCHAR", "ts": "TIMESTAMP", "y": "BIGINT", "flag": "BOOLEAN"},
    "late": {"k1": "BIGINT", "feature_ts": "TIMESTAMP", "loaded_at": "TIMESTAMP", "z": "DOUBLE"},
}
TTLS = [None, 1800, 3600, 6 * 3600, 86400]
K1 = range(1, 6)  # keys present in views; labels also use 0 and 6 (missing from every view)
K2 = ["a", "b"]


def draw_instant(draw) -> datetime:
    """On a half-hour grid (so rows and labels collide), sometimes nudged by a microsecond."""
    return EPOCH + timedelta(minutes=30 * draw.integer(0, 96)) + US * draw.choice([0, 0, 0, 1, -1])


def maybe(draw, value, null_share=4):
    return None if draw.integer(1, null_share) == 1 else value


def draw_specs(draw) -> list[dict]:
    plain = view_spec(
        "plain",
        ["k1"],
        "feature_ts",
        [
            feature("x", fill=draw.choice([None, 0, 1.5])),
            feature("s", fill=draw.choice([None, "none"])),
            feature("seen_hours", "seen_ts", fill=draw.choice([None, -1]), unit=draw.choice(["minute", "hour", "day"])),
        ],
        ttl_seconds=draw.choice(TTLS),
        windowed=draw.choice([False, True]),  # publish and freshness read it; the join must not care
    )
    pair = view_spec(
        "pair",
        ["k1", "k2"],
        "ts",
        [
            feature("y", fill=draw.choice([None, 0])),
            feature("flag", fill=draw.choice([None, False])),
            feature("pair_age_days", "ts", fill=draw.choice([None, 365]), unit=draw.choice(["hour", "day"])),
        ],
        ttl_seconds=draw.choice(TTLS),
        windowed=draw.choice([False, True]),
    )
    late = view_spec(
        "late",
        ["k1"],
        "feature_ts",
        [feature("z", fill=draw.choice([None, 3.5])), feature("late_age", "feature_ts", unit="hour")],
        available_at="loaded_at",
        ttl_seconds=draw.choice(TTLS),
    )
    specs = [plain, pair, late]
    order = draw.choice([(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)])
    return [specs[i] for i in order][: draw.choice([1, 2, 3, 3, 3])]


def draw_rows(draw, ref: str) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for _ in range(draw.integer(0, 24)):
        k1, k2, ts = draw.choice(K1), draw.choice(K2), draw_instant(draw)
        if ref == "plain":
            seen = ts + timedelta(minutes=draw.integer(-600, 600), microseconds=draw.choice([0, 1, -1]))
            row = {"k1": k1, "feature_ts": ts, "x": maybe(draw, draw.integer(-99, 99) / 4), "s": maybe(draw, draw.choice("pqr")), "seen_ts": maybe(draw, seen)}
            rows[(k1, ts)] = row  # (key, feature_ts) is unique in a valid view
        elif ref == "pair":
            row = {"k1": k1, "k2": k2, "ts": ts, "y": maybe(draw, draw.integer(-5, 50)), "flag": maybe(draw, draw.choice([True, False]))}
            rows[(k1, k2, ts)] = row
        else:
            # Mostly loaded a little after feature_ts; sometimes days late (a late-arriving older
            # row), at the very same instant as another row, or before its own feature_ts.
            delay = draw.choice([0, 30, 60, 90, 60 * 24, 60 * 72, -60])
            loaded = ts + timedelta(minutes=delay) + US * draw.choice([0, 0, 1])
            row = {"k1": k1, "feature_ts": ts, "loaded_at": loaded, "z": maybe(draw, draw.integer(0, 40) / 8)}
            rows[(k1, ts)] = row
    return list(rows.values())


def draw_label_time(draw, specs, rows) -> datetime:
    """A label time at an edge of some row (tie, ttl edge, availability instant), or anywhere."""
    spec = draw.choice(specs)
    anchors = rows[spec["ref"]]
    kind = draw.choice(["anywhere", "before", "edge", "edge", "edge"])
    if kind == "anywhere" or not anchors:
        return draw_instant(draw)
    if kind == "before":
        return EPOCH - US * draw.choice([0, 1])
    row = draw.choice(anchors)
    base = row[draw.choice([spec["timestamp"], spec["available_at"] or spec["timestamp"]])]
    ttl = timedelta(seconds=spec["ttl_seconds"] or 3600)
    return base + draw.choice([timedelta(0), US, -US, ttl, ttl + US, ttl - US])


@dataclass
class Case:
    specs: list[dict]
    rows: dict[str, list[dict]]
    labels: list[dict]
    label_columns: list[str]
    row_column: str | None
    zoned: bool = False


def draw_case(draw) -> Case:
    specs = draw_specs(draw)
    rows = {ref: draw_rows(draw, ref) for ref in TABLES}
    zoned = draw.choice([False, False, True])
    labels = []
    for rid in range(1, draw.integer(1, 30) + 1):
        if labels and draw.integer(1, 6) == 1:
            labels.append(dict(labels[draw.integer(0, len(labels) - 1)], rid=rid))  # duplicate label row
            continue
        t = draw_label_time(draw, specs, rows)
        if zoned:  # the same instant written with another UTC offset
            offset = timedelta(minutes=draw.choice([0, 120, -300, 330]))
            t = t.replace(tzinfo=timezone.utc).astimezone(timezone(offset))
        k1 = draw.choice([*K1, 0, 6, None]) if draw.integer(1, 4) > 1 or not rows["plain"] else draw.choice(rows["plain"])["k1"]
        labels.append({"rid": rid, "k1": k1, "k2": draw.choice([*K2, "c"]), "label_ts": t, "target": maybe(draw, draw.integer(0, 1))})
    # The output order comes from row_column when given, else from the order rows are read.
    row_column = draw.choice([None, "rid"])
    label_columns = draw.choice([["k1", "k2", "label_ts", "target"], ["target", "label_ts", "k2", "k1", "rid"]])
    return Case(specs, rows, labels, label_columns, row_column, zoned)


# ---------------------------------------------------------------------------------------------
# Running the rendered join on a real DuckDB file


def create_table(con, name: str, columns: dict[str, str], rows: list[dict]) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    if rows:
        values = ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * len(rows))
        con.execute(f"INSERT INTO {name} VALUES {values}", [r[c] for r in rows for c in columns])


def load_case(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    con.execute("BEGIN")
    for ref, columns in TABLES.items():
        create_table(con, ref, columns, case.rows[ref])
    ts_type = "TIMESTAMPTZ" if case.zoned else "TIMESTAMP"
    label_types = {"rid": "BIGINT", "k1": "BIGINT", "k2": "VARCHAR", "label_ts": ts_type, "target": "BIGINT"}
    create_table(con, "labels", label_types, case.labels)
    con.execute("COMMIT")


def run_case(con, renderer: MacroRenderer, case: Case) -> list[str]:
    load_case(con, case)
    result = con.execute(case_join(renderer, case))
    return check_case(case, [d[0] for d in result.description], result.fetchall())


def case_join(renderer: MacroRenderer, case: Case) -> str:
    """The join of the case's tables, rendered for the renderer's adapter."""
    return renderer.call(
        "point_in_time_join",
        "labels",
        case.specs,
        timestamp_column="label_ts",
        label_columns=case.label_columns,
        row_column=case.row_column,
    )


def check_case(case: Case, columns: list[str], actual: list) -> list[str]:
    """How the join's output differs from the oracle's."""
    expected_columns = output_columns(case.specs, case.label_columns)
    if columns != expected_columns:
        return [f"columns {columns}, expected {expected_columns}"]
    expected = oracle(case.specs, case.rows, case.labels, case.label_columns, "label_ts")
    return mismatches(expected, actual, columns)


def test_view_spec_shape(renderers):
    """The hand-made specs above have exactly the fields of a real view_spec."""
    real = renderers["duckdb"].call("feature_views")
    made = view_spec("v", ["k"], "ts", [feature("a"), feature("b", "ts", unit="day")])
    for spec in real.values():
        assert set(spec) == set(made)
        for f in spec["features"]:
            assert set(f) == set(made["features"][0 if f["kind"] == "column" else 1])


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_seeded_random_cases_match_oracle(adapter, renderers, oracle_db):
    failures = {}
    for seed in range(150):
        problems = run_case(oracle_db, renderers[adapter], draw_case(SeededDraw(seed)))
        if problems:
            failures[seed] = problems[:5]
    assert failures == {}


@pytest.mark.parametrize("adapter", ADAPTERS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hypothesis_cases_match_oracle(adapter, renderers, oracle_db, data):
    assert run_case(oracle_db, renderers[adapter], draw_case(HypothesisDraw(data))) == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_named_edges(adapter, renderers, oracle_db):
    """The edges the contract names, each asserted on its own (not only through the oracle)."""
    t0 = EPOCH + timedelta(days=1)
    specs = [
        view_spec("plain", ["k1"], "feature_ts", [feature("x", fill=0), feature("s"), feature("seen_hours", "seen_ts", unit="hour")], ttl_seconds=3600),
        view_spec("late", ["k1"], "feature_ts", [feature("z")], available_at="loaded_at"),
    ]
    rows = {
        "plain": [
            {"k1": 1, "feature_ts": t0, "x": None, "s": None, "seen_ts": t0 + 2 * US},
            {"k1": 2, "feature_ts": t0, "x": 2.0, "s": "b", "seen_ts": t0 - timedelta(minutes=90)},
        ],
        "pair": [],
        "late": [
            {"k1": 1, "feature_ts": t0 + timedelta(hours=2), "loaded_at": t0 + timedelta(hours=2), "z": 2.0},
            # older, but loaded later: once both are available the newer row still wins
            {"k1": 1, "feature_ts": t0 + timedelta(hours=1), "loaded_at": t0 + timedelta(hours=5), "z": 1.0},
        ],
    }
    tie, ttl = t0, t0 + timedelta(hours=1)
    available, both = t0 + timedelta(hours=2), t0 + timedelta(hours=5) + US
    times = [EPOCH, tie, tie + US, ttl, ttl + US, available, available + US, both]
    labels = [{"rid": len(times) * (k - 1) + i, "k1": k, "k2": "a", "label_ts": t, "target": 0} for k in (1, 2) for i, t in enumerate(times)]
    load_case(oracle_db, Case(specs, rows, labels, [], None))
    sql = renderers[adapter].call("point_in_time_join", "labels", specs, label_columns=["k1", "label_ts"], row_column="rid")
    got = {(r[0], r[1]): r[2:] for r in oracle_db.execute(sql).fetchall()}
    nothing = (0, None, None, None, None, None)  # (x, s, seen_hours, plain__feature_ts, z, late__feature_ts)
    assert got[1, EPOCH] == got[2, EPOCH] == nothing  # before the first row
    assert got[1, tie] == got[2, tie] == nothing  # feature_ts == label time never matches
    assert got[1, tie + US] == (0, None, -1, t0, None, None)  # null x filled; -2 µs elapsed floors to -1 h
    assert got[2, tie + US] == (2.0, "b", 1, t0, None, None)  # 90 min + 1 µs is 1 whole hour
    assert got[2, ttl] == (2.0, "b", 2, t0, None, None)  # exactly ttl old: still there
    assert got[2, ttl + US] == nothing  # 1 µs older than the ttl: missing, then filled
    assert got[1, available][4:] == (None, None)  # available_at == label time is not available
    assert got[1, available + US][4:] == (2.0, t0 + timedelta(hours=2))
    assert got[1, both][4:] == (2.0, t0 + timedelta(hours=2))  # the late older row does not win


# ---------------------------------------------------------------------------------------------
# The public path over the built example warehouse


def warehouse_rows(project: Path, views: list[dict]) -> dict[str, list[dict]]:
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        rows = {}
        for view in views:
            result = con.execute(f"SELECT * FROM {view['relation']}")
            names = [d[0] for d in result.description]
            rows[view["ref"]] = [dict(zip(names, r)) for r in result.fetchall()]
        return rows
    finally:
        con.close()


def example_labels(views, rows, seed: int, count: int = 400) -> list[dict]:
    """Customers with history, unknown customers and label times on the rows' edges."""
    rng = random.Random(seed)
    ids = sorted({r["customer_id"] for view_rows in rows.values() for r in view_rows})
    labels = []
    for i in range(count):
        if labels and rng.random() < 0.1:
            labels.append(dict(labels[rng.randrange(len(labels))]))
            continue
        view = rng.choice(views)
        row = rng.choice(rows[view["ref"]])
        ttl = timedelta(seconds=view["ttl_seconds"] or 86400)
        edge = rng.choice([timedelta(0), US, -US, ttl, ttl + US, timedelta(days=rng.randint(-40, 40))])
        t = row[rng.choice([view["timestamp"], view["available_at"] or view["timestamp"]])] + edge
        if rng.random() < 0.05:
            t = datetime(2023, 6, 1)  # before any history
        customer = row["customer_id"] if rng.random() < 0.8 else rng.choice([*ids, 10**9])
        labels.append({"customer_id": customer, "label_ts": t, "churned": rng.randint(0, 1), "note": f"n{i}"})
    return labels


def write_labels(path: Path, labels: list[dict], zoned: bool, seed: int) -> None:
    """CSV or Parquet by suffix; zoned: every time written with a UTC offset (CSV) or as UTC
    instants (Parquet), naive otherwise."""
    rng = random.Random(seed)

    def shown(t: datetime):
        if not zoned:
            return t
        return t.replace(tzinfo=timezone.utc).astimezone(timezone(timedelta(minutes=rng.choice([0, 60, -240, 330]))))

    frame = pd.DataFrame([{**l, "label_ts": shown(l["label_ts"])} for l in labels])
    if path.suffix == ".csv":
        frame["label_ts"] = [t.isoformat(sep=" ") for t in frame["label_ts"]]
        frame.to_csv(path, index=False)
    else:
        ts = pa.array([shown(l["label_ts"]) for l in labels], pa.timestamp("us", tz="UTC" if zoned else None))
        table = pa.Table.from_pandas(frame.drop(columns="label_ts"), preserve_index=False)
        pq.write_table(table.add_column(1, "label_ts", ts), path)


def python_value(value):
    if pd.isna(value):  # None, NaN, NaT and pd.NA alike
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


@pytest.fixture(scope="module")
def churn_views(built_project) -> list[dict]:
    return featurekit.catalog.resolve(Project(built_project), feature_set="churn_model")["views"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("zoned", [False, True], ids=["naive", "tz-aware"])
def test_training_set_matches_oracle(built_project, churn_views, tmp_path, suffix, zoned):
    rows = warehouse_rows(built_project, churn_views)
    labels = example_labels(churn_views, rows, seed=7)
    path = tmp_path / f"labels{suffix}"
    write_labels(path, labels, zoned, seed=11)

    frame = featurekit.training_set(path, feature_set="churn_model", project_dir=built_project)

    label_columns = ["customer_id", "label_ts", "churned", "note"]
    assert list(frame.columns) == output_columns(churn_views, label_columns)
    actual = [tuple(python_value(v) for v in row) for row in frame.itertuples(index=False)]
    # tz-aware label times come back as UTC instants; compare them as such
    actual = [(r[0], utc_naive(r[1]), *r[2:]) for r in actual]
    expected = oracle(churn_views, rows, labels, label_columns, "label_ts")
    assert mismatches(expected, actual, list(frame.columns)) == []


def test_cli_matches_oracle(built_project, churn_views, tmp_path):
    rows = warehouse_rows(built_project, churn_views)
    labels = example_labels(churn_views, rows, seed=3, count=200)
    path = tmp_path / "labels.csv"
    write_labels(path, labels, zoned=True, seed=5)
    out = tmp_path / "train.parquet"

    featurekit_cli("train-set", str(path), "--feature-set", "churn_model", "-o", str(out), "--project-dir", str(built_project))

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = con.execute(f"SELECT * FROM read_parquet('{out}')")
    columns = [d[0] for d in result.description]
    actual = [(r[0], utc_naive(r[1]), *r[2:]) for r in result.fetchall()]
    label_columns = ["customer_id", "label_ts", "churned", "note"]
    assert columns == output_columns(churn_views, label_columns)
    assert mismatches(oracle(churn_views, rows, labels, label_columns, "label_ts"), actual, columns) == []


# ---------------------------------------------------------------------------------------------
# Label times as text: every accepted form means the instant the oracle is given


def cut(t: datetime, unit: str) -> datetime:
    """t without what a form cannot write (whole days, minutes, seconds or tenths)."""
    if unit == "day":
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "minute":
        return t.replace(second=0, microsecond=0)
    if unit == "second":
        return t.replace(microsecond=0)
    return t.replace(microsecond=t.microsecond // 100000 * 100000)


# name -> (precision, offset in minutes or None for a naive form, the text of an instant that
# is `t` in UTC given `local` = t plus the offset)
NAIVE_FORMS = {
    "date": ("day", None, lambda local: f"{local:%Y-%m-%d}"),
    "minutes": ("minute", None, lambda local: f"{local:%Y-%m-%d %H:%M}"),
    "seconds with T": ("second", None, lambda local: f"{local:%Y-%m-%dT%H:%M:%S}"),
    "microseconds": ("microsecond", None, lambda local: f"{local:%Y-%m-%d %H:%M:%S.%f}"),
    "tenths, spaces around": ("tenth", None, lambda local: f"  {local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 100000} "),
}
ZONED_FORMS = {
    "Z": ("microsecond", 0, lambda local: f"{local:%Y-%m-%dT%H:%M:%S.%f}Z"),
    "UTC": ("second", 0, lambda local: f"{local:%Y-%m-%d %H:%M:%S} UTC"),
    "+hh": ("second", 120, lambda local: f"{local:%Y-%m-%d %H:%M:%S}+02"),
    "+hhmm": ("second", 330, lambda local: f"{local:%Y-%m-%d %H:%M:%S}+0530"),
    "-hh:mm": ("tenth", -300, lambda local: f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 100000}-05:00"),
    "minutes with an offset": ("minute", 60, lambda local: f"{local:%Y-%m-%dT%H:%M}+01:00"),
}


@pytest.mark.parametrize("forms", [NAIVE_FORMS, ZONED_FORMS], ids=["naive", "with offsets"])
def test_label_time_forms_match_oracle(built_project, churn_views, tmp_path, forms):
    """Label times on the rows' edges, each written in one of the forms (in turn), dates mixed
    with datetimes: the join sees each as the instant the oracle is given."""
    rows = warehouse_rows(built_project, churn_views)
    labels = example_labels(churn_views, rows, seed=13, count=300)
    written = []
    for i, label in enumerate(labels):
        unit, offset, text = list(forms.values())[i % len(forms)]
        label["label_ts"] = cut(label["label_ts"], unit)
        written.append({**label, "label_ts": text(label["label_ts"] + timedelta(minutes=offset or 0))})
    path = tmp_path / "labels.csv"
    pd.DataFrame(written).to_csv(path, index=False)

    frame = featurekit.training_set(path, feature_set="churn_model", project_dir=built_project)

    actual = [tuple(python_value(v) for v in row) for row in frame.itertuples(index=False)]
    actual = [(r[0], utc_naive(r[1]), *r[2:]) for r in actual]
    label_columns = ["customer_id", "label_ts", "churned", "note"]
    assert mismatches(oracle(churn_views, rows, labels, label_columns, "label_ts"), actual, list(frame.columns)) == []
    assert str(frame["label_ts"].dtype).startswith("datetime64[us, " if forms is ZONED_FORMS else "datetime64[us]")


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "CET"])
def test_label_times_with_zone_names_are_refused(built_project, tmp_path, zone):
    """A zone name is refused, not read as UTC: an offset says the same without a zone database."""
    path = tmp_path / "labels.csv"
    path.write_text(f"customer_id,label_ts\n1,2024-03-01 09:00:00Z\n2,2024-03-01 09:00:00 {zone}\n")
    with pytest.raises(featurekit.FeaturekitError, match=f"^labels.csv row 2: label_ts '2024-03-01 09:00:00 {zone}' names a time zone"):
        featurekit.training_set(path, feature_set="churn_model", project_dir=built_project)
