"""The serving rules in Python (online/rules.py, applied by the plans over a mapped layout)
give exactly what the macros give, value by value.

No dbt build: featurekit's own macro files are rendered with the macro renderer, and
featurekit.feature_columns (with add_seconds, elapsed, literal) is evaluated in DuckDB on
generated views, rows and request times: ties at the visibility instant, ttl edges to the
microsecond, nulls, fills of every type, integer, text and composite keys, request times
with time zones. The Python side is the real thing: the layout publish writes (layout_writer.write),
opened by OnlineStore, looked up one key at a time and in batches.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurekit.dbt_package import PACKAGE_DIR
from featurekit.macros import MacroRenderer
from featurekit.online import layout_writer
from featurekit.online.snapshots import SnapshotDir
from featurekit.online.store import BATCH, OnlineStore

US = timedelta(microseconds=1)
BASE = datetime(2024, 3, 10, 12)
SNAPSHOT = "20240101T000000000000Z"
MACRO = re.compile(r"{%-?\s*macro\s+(\w+)\(.*?{%-?\s*endmacro\s*-?%}", re.S)


def package_renderer() -> MacroRenderer:
    """featurekit's macros as dbt's manifest would list them, read from the package files."""
    macros = {}
    for path in sorted((PACKAGE_DIR / "macros").rglob("*.sql")):
        for found in MACRO.finditer(path.read_text()):
            macros[f"macro.featurekit.{found.group(1)}"] = {"package_name": "featurekit", "name": found.group(1), "macro_sql": found.group(0)}
    return MacroRenderer({"macros": macros}, "duckdb")


RENDERER = package_renderer()

TYPES = {  # SQL type: (values, fills)
    "BIGINT": (st.integers(-10**12, 10**12), st.integers(-5, 5)),
    "DOUBLE": (st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0, 0.5, -1e-05, 3.5, 1e300])),
    "VARCHAR": (st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=6), st.sampled_from(["unknown", "", "it's"])),
    "BOOLEAN": (st.booleans(), st.booleans()),
    "TIMESTAMP": (st.integers(-10**12, 10**12).map(lambda us: BASE + timedelta(microseconds=us)), st.just("2024-02-03 04:05:06")),
    "DATE": (st.integers(-1000, 1000).map(lambda d: date(2024, 1, 1) + timedelta(days=d)), st.just("2024-02-03")),
}
ARROW = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "VARCHAR": pa.string(), "BOOLEAN": pa.bool_(),
         "TIMESTAMP": pa.timestamp("us"), "DATE": pa.date32()}
KEYS = {"int": [("k", "BIGINT")], "text": [("k", "VARCHAR")], "composite": [("k1", "BIGINT"), ("k2", "VARCHAR")]}
ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]


@st.composite
def cases(draw):
    key_kind = draw(st.sampled_from(sorted(KEYS)))
    ttl = draw(st.sampled_from([None, 1, 3600, 86400]))
    features, sources = [], {}
    for i, sql_type in enumerate(draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=4))):
        sources[f"c{i}"] = sql_type
        fill = draw(st.none() | TYPES[sql_type][1])
        features.append({"name": f"f{i}", "kind": "value", "source": f"c{i}", "fill": fill})
    for i, unit in enumerate(draw(st.lists(st.sampled_from([1, 60, 86400]), max_size=2))):
        sources[f"s{i}"] = "TIMESTAMP"
        fill = draw(st.none() | st.integers(-1, 400))
        features.append({"name": f"r{i}", "kind": "request_time", "source": f"s{i}", "unit_seconds": unit, "fill": fill})
    key_values = {"int": st.integers(-3, 10**15), "text": st.text(max_size=4), "composite": st.tuples(st.integers(0, 3), st.text("ab", max_size=2))}
    keys = draw(st.lists(key_values[key_kind], min_size=1, max_size=5, unique=True))
    rows = []
    for key in keys:
        instants = draw(st.lists(st.integers(0, 4 * 86400 * 10**6), min_size=1, max_size=3, unique=True))
        for at in sorted(instants):
            lag = draw(st.sampled_from([0, 0, 1, 3_600_000_000]))  # availability after the feature time
            values = {name: draw(st.none() | TYPES[kind][0]) for name, kind in sources.items()}
            rows.append({"key": key, "at": BASE + timedelta(microseconds=at), "feature_ts": BASE + timedelta(microseconds=at - lag), **values})
    times = []
    for row in rows:
        times += [row["at"] - US, row["at"], row["at"] + US]
        if ttl:
            edge = row["feature_ts"] + timedelta(seconds=ttl)
            times += [edge, edge + US, edge - US]
    times += [BASE + timedelta(microseconds=draw(st.integers(-86400 * 10**6, 6 * 86400 * 10**6)))]
    requests = [(draw(st.sampled_from(keys + [None])), t, draw(st.sampled_from(ZONES)))  # None: a key not held
                for t in draw(st.lists(st.sampled_from(times), min_size=1, max_size=12))]
    return key_kind, ttl, features, sources, rows, requests


def key_columns(key_kind, key) -> dict:
    names = [n for n, _ in KEYS[key_kind]]
    values = key if key_kind == "composite" else (key,)
    if key is None:  # a key the view does not hold
        values = (10**16,) if key_kind == "int" else ("never",) if key_kind == "text" else (99, "zz")
    return dict(zip(names, values))


def sql_results(con, view: dict, key_kind: str, requests: list) -> tuple[pa.Schema, list[tuple]]:
    """featurekit.feature_columns over each request's row (the last visible before t)."""
    names = [n for n, _ in KEYS[key_kind]]
    on = " and ".join(f"v.{n} = r.{n}" for n in names)
    columns = RENDERER.call("feature_columns", view, "m.", "m.__fk_feature_ts", "m.t")
    sql = f"""
        with matched as (
            select r.i, r.t, v.* exclude ({', '.join(names)}),
                   row_number() over (partition by r.i order by v.__fk_at desc) as rank
            from requests as r left join v on {on} and v.__fk_at < r.t
        )
        select {', '.join(columns)} from matched as m where rank = 1 order by i
    """
    table = con.sql(sql).to_arrow_table()
    return table.schema, [tuple(row.values()) for row in table.to_pylist()]


def publish_by_hand(con, directory: Path, view: dict, key_kind: str, schema: pa.Schema) -> OnlineStore:
    """The snapshot publish would write for one view, from table v on `con`."""
    keys = KEYS[key_kind]
    set_schema = pa.schema([pa.field(n, ARROW[t]) for n, t in keys] + list(schema))
    spec = {"name": "fs", "keys": [n for n, _ in keys], "key_types": dict(keys), "views": [view],
            "arrow_schema": base64.b64encode(set_schema.serialize().to_pybytes()).decode()}
    manifest = {"snapshot_id": SNAPSHOT, "feature_sets": {"fs": spec},
                "views": {view["ref"]: {"table": "v", "keys": spec["keys"], "key_types": dict(keys)}}}
    manifest["serving"] = layout_writer.write(con, "main", directory / f"{SNAPSHOT}.serving", manifest, RENDERER)
    (directory / f"{SNAPSHOT}.json").write_text(json.dumps(manifest))
    SnapshotDir(directory).switch(SNAPSHOT)
    return OnlineStore(directory)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_the_python_rules_equal_the_macros(case):
    key_kind, ttl, features, sources, rows, requests = case
    view = {"ref": "v", "keys": [n for n, _ in KEYS[key_kind]], "ttl_seconds": ttl, "features": features}
    names = [n for n, _ in KEYS[key_kind]]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    arrow_rows = {n: pa.array([key_columns(key_kind, r["key"])[n] for r in rows], ARROW[t]) for n, t in KEYS[key_kind]}
    arrow_rows["__fk_at"] = pa.array([r["at"] for r in rows], pa.timestamp("us"))
    arrow_rows["__fk_feature_ts"] = pa.array([r["feature_ts"] for r in rows], pa.timestamp("us"))
    for name, kind in sources.items():
        arrow_rows[name] = pa.array([r[name] for r in rows], ARROW[kind])
    con.register("v_rows", pa.table(arrow_rows))
    con.execute("create table v as select * from v_rows")
    asked = [(key_columns(key_kind, key), t, zone) for key, t, zone in requests]
    con.register("r_rows", pa.table({
        "i": list(range(len(asked))), **{n: pa.array([k[n] for k, _, _ in asked], ARROW[t]) for n, t in KEYS[key_kind]},
        "t": pa.array([t for _, t, _ in asked], pa.timestamp("us")),
    }))
    con.execute("create table requests as select * from r_rows")
    schema, expected = sql_results(con, view, key_kind, requests)
    with tempfile.TemporaryDirectory() as directory:
        store = publish_by_hand(con, Path(directory), view, key_kind, schema)
        width = len(names)
        for (key, t, zone), want in zip(asked, expected):
            at = t.replace(tzinfo=timezone.utc).astimezone(zone).isoformat()  # the same instant, elsewhere
            one = store.lookup("fs", [key], at).rows[0]
            assert typed(one[width:width + len(want)]) == typed(want), (key, at, one, want)
            batch = store.lookup("fs", [key] * BATCH, at).rows
            assert all(typed(row[width:width + len(want)]) == typed(want) for row in batch), (key, at, batch[0], want)
    con.close()


def typed(values) -> list:
    """Values with their types: 0 and 0.0, or 1 and True, are different answers."""
    return [(type(v).__name__, v) for v in values]
