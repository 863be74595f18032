"""Exact sliding-window histories (window_history) against a brute-force oracle.

The oracle is the contract of window_history.yml in plain Python: at time t a
windowed value aggregates the raw events e of the key that pass the filter with
t - window <= e < t, as SQL aggregates do (count(col) skips nulls; sum, avg, min and max of
no values are null), and a key has no value at all before its first event.

What is compared with it is the real path: the history SQL rendered by
featurekit.macros.MacroRenderer from the macros of a real dbt manifest (duckdb__ and the
portable default__), run on DuckDB, then read through point_in_time_join rendered
the same way, at label times on every event, every window expiry and a microsecond on either
side of each. Incremental runs (existing=) are checked against a full rebuild.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import duckdb
import pytest

from featurekit.errors import FeaturekitError
from featurekit.macros import MacroRenderer
from conftest import ADAPTERS

EPOCH = datetime(2024, 1, 1)
US = timedelta(microseconds=1)
WINDOWS = {"1 second": 1, "10 seconds": 10, "1 minute": 60, "1 hour": 3600}
FUNCTIONS = ["count", "count_distinct", "sum", "avg", "min", "max"]
# Aggregated columns (SQL expression -> the same in Python); x is a positive double or null.
COLUMNS = {
    "x": lambda e: e["x"],
    "g": lambda e: e["g"],
    "case when g = 1 then x end": lambda e: e["x"] if e["g"] == 1 else None,
}
EVENT_TYPES = {"k": "BIGINT", "r": "VARCHAR", "ts": "TIMESTAMP", "loaded_at": "TIMESTAMP", "x": "DOUBLE", "g": "BIGINT", "kept": "BOOLEAN"}


# ---------------------------------------------------------------------------------------------
# The oracle


def oracle_value(aggregate: dict, events: list[dict], t: datetime):
    """One aggregate at time t over one key's events (already filtered)."""
    start = t - timedelta(seconds=WINDOWS[aggregate["window"]])
    inside = [e for e in events if start <= e["ts"] < t]
    if aggregate["function"] == "count" and "column" not in aggregate:
        return len(inside)
    values = [v for v in (COLUMNS[aggregate["column"]](e) for e in inside) if v is not None]
    function = aggregate["function"]
    if function == "count":
        return len(values)
    if function == "count_distinct":
        return len(set(values))
    if not values:
        return None
    return {"sum": math.fsum, "avg": lambda v: math.fsum(v) / len(v), "min": min, "max": max}[function](values)


def oracle_row(case: "Case", key: tuple, t: datetime) -> list:
    events = [e for e in case.events if e["kept"] and tuple(e[k] for k in case.keys) == key]
    if not any(e["ts"] < t for e in events):  # no history row before t: nothing to join
        return [None] * len(case.aggregates)
    return [oracle_value(a, events, t) for a in case.aggregates]


def same(want, got, adapter: str, function: str) -> bool:
    """Exact, except that the portable sum/avg add in whatever order the engine likes."""
    if adapter == "default" and function in ("sum", "avg") and want is not None and got is not None:
        return math.isclose(want, got, rel_tol=1e-12)
    return want == got and type(want) is type(got)


# ---------------------------------------------------------------------------------------------
# Randomized events: bursts, identical instants, events exactly one window (or 1 µs less or
# more) after another, gaps longer than every window, null values, filtered-out events.


class Case:
    def __init__(self, keys, aggregates, events):
        self.keys, self.aggregates, self.events = keys, aggregates, events

    @property
    def seconds(self) -> list[int]:
        return sorted({WINDOWS[a["window"]] for a in self.aggregates})


def random_aggregates(rng: random.Random) -> list[dict]:
    aggregates = []
    for i in range(rng.randint(1, 6)):
        function = rng.choice(FUNCTIONS)
        aggregate = {"name": f"a{i}", "function": function, "window": rng.choice(list(WINDOWS))}
        if function != "count" or rng.random() < 0.5:
            aggregate["column"] = rng.choice(list(COLUMNS))
        aggregates.append(aggregate)
    return aggregates


def random_events(rng: random.Random, keys: list[str], seconds: list[int], count: int) -> list[dict]:
    events: list[dict] = []
    key_values = [(k, rng.choice(["a", "b"])) for k in range(1, 4)]
    for _ in range(count):
        roll = rng.random()
        if events and roll < 0.15:  # the same instant as another event
            ts = rng.choice(events)["ts"]
        elif events and roll < 0.45:  # exactly a window after another event, or 1 µs off
            ts = rng.choice(events)["ts"] + timedelta(seconds=rng.choice(seconds)) + US * rng.choice([0, 0, 1, -1])
        elif events and roll < 0.6:  # a burst: within a second of another event
            ts = rng.choice(events)["ts"] + US * rng.randint(1, 1_000_000)
        elif roll < 0.7:  # far away: a gap longer than every window
            ts = EPOCH + timedelta(days=rng.randint(1, 3), seconds=rng.randint(0, 86399))
        else:
            ts = EPOCH + timedelta(seconds=rng.randint(0, 7200), microseconds=rng.choice([0, rng.randint(0, 999_999)]))
        k, r = rng.choice(key_values)
        events.append({
            "k": k,
            "r": r if "r" in keys else "a",
            "ts": ts,
            "loaded_at": ts + timedelta(seconds=rng.randint(0, 600)),
            "x": None if rng.random() < 0.2 else rng.choice([round(rng.uniform(0.01, 500), 2), 1e6 + rng.randint(0, 99) / 100]),
            "g": None if rng.random() < 0.2 else rng.randint(0, 3),
            "kept": rng.random() < 0.8,
        })
    return events


def random_case(seed: int) -> Case:
    rng = random.Random(seed)
    keys = ["k", "r"] if rng.random() < 0.3 else ["k"]
    aggregates = random_aggregates(rng)
    seconds = sorted({WINDOWS[a["window"]] for a in aggregates})
    return Case(keys, aggregates, random_events(rng, keys, seconds, rng.randint(0, 40)))


def label_times(case: Case) -> list[tuple[tuple, datetime]]:
    """(key, t) at each event, each expiry and 1 µs either side; before and long after all;
    and a key that has no events."""
    keys = {tuple(e[k] for k in case.keys) for e in case.events} | {tuple(0 if k == "k" else "z" for k in case.keys)}
    labels = []
    for key in sorted(keys):
        instants = {EPOCH - timedelta(days=1), EPOCH + timedelta(days=10)}
        for e in case.events:
            if tuple(e[k] for k in case.keys) == key:
                for offset in [0, *case.seconds]:
                    at = e["ts"] + timedelta(seconds=offset)
                    instants |= {at - US, at, at + US}
        labels += [(key, t) for t in sorted(instants)]
    return labels


# ---------------------------------------------------------------------------------------------
# Running the rendered macros


def create_table(con, name: str, types: dict[str, str], rows: list[dict]) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {name} ({', '.join(f'{c} {t}' for c, t in types.items())})")
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(types))})", [[r[c] for c in types] for r in rows])


def history_sql(renderer: MacroRenderer, case: Case, events: str = "events", existing: str | None = None) -> str:
    return renderer.call(
        "window_history",
        events,
        keys=case.keys,
        timestamp="ts",
        aggregates=case.aggregates,
        where="kept",
        loaded_at="loaded_at",
        existing=existing,
    )


def view_spec(case: Case) -> dict:
    """The history as a feature view with no ttl and no fill (so missing stays null)."""
    return {
        "ref": "history", "name": "history", "version": None, "latest_version": None,
        "unique_id": "model.windows.history", "relation": "history", "entity": "thing",
        "keys": case.keys, "timestamp": "feature_ts", "available_at": None, "ttl": None, "ttl_seconds": None, "windowed": True,
        "freshness": {}, "owner": None, "description": "",
        "features": [{"name": a["name"], "kind": "column", "source": a["name"], "fill": None} for a in case.aggregates],
    }


def mismatches(con, renderer: MacroRenderer, case: Case, adapter: str) -> list[str]:
    """Builds the history, joins it at every label time and compares with the oracle."""
    create_table(con, "events", EVENT_TYPES, case.events)
    con.execute(f"CREATE OR REPLACE TABLE history AS {history_sql(renderer, case)}")
    problems = history_shape_problems(con, case)
    labels = label_times(case)
    label_types = {k: EVENT_TYPES[k] for k in case.keys} | {"label_ts": "TIMESTAMP"}
    create_table(con, "labels", label_types, [dict(zip(case.keys, key), label_ts=t) for key, t in labels])
    join = renderer.call("point_in_time_join", "labels", [view_spec(case)], label_columns=[*case.keys, "label_ts"])
    for (key, t), row in zip(labels, con.execute(join).fetchall()):
        got = row[len(case.keys) + 1 : -1]
        for aggregate, want, value in zip(case.aggregates, oracle_row(case, key, t), got):
            if not same(want, value, adapter, aggregate["function"]):
                problems.append(f"{aggregate} at key {key} t={t}: oracle {want!r}, join {value!r}")
    return problems


def history_shape_problems(con, case: Case) -> list[str]:
    """Rows exactly at the instants a value can change: each kept event and each of its
    expiries, once per key; nothing else."""
    want = set()
    for e in case.events:
        if e["kept"]:
            for offset in [0, *case.seconds]:
                want.add((*(e[k] for k in case.keys), e["ts"] + timedelta(seconds=offset)))
    rows = con.execute(f"SELECT {', '.join(case.keys)}, feature_ts FROM history").fetchall()
    problems = []
    if len(rows) != len(set(rows)):
        problems.append("history has duplicate (keys, feature_ts) rows")
    if set(rows) != want:
        problems.append(f"history instants differ: missing {sorted(want - set(rows))[:3]}, extra {sorted(set(rows) - want)[:3]}")
    return problems


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


# ---------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_random_histories_match_the_oracle(adapter, renderers, con):
    failures, compared = {}, 0
    for seed in range(60):
        case = random_case(seed)
        problems = mismatches(con, renderers[adapter], case, adapter)
        compared += len(label_times(case)) * len(case.aggregates)
        if problems:
            failures[seed] = problems[:3]
    assert failures == {}
    assert compared > 30_000  # not vacuous


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_named_window_edges(adapter, renderers, con):
    """One event at t0 (value 5) and one filtered out, 1-minute window: the edges by name."""
    t0 = EPOCH + timedelta(hours=1)
    case = Case(
        ["k"],
        [
            {"name": "n", "function": "count", "window": "1 minute"},
            {"name": "total", "function": "sum", "column": "x", "window": "1 minute"},
            {"name": "nulls_skipped", "function": "count", "column": "g", "window": "1 minute"},
        ],
        [
            {"k": 1, "r": "a", "ts": t0, "loaded_at": t0, "x": 5.0, "g": None, "kept": True},
            {"k": 1, "r": "a", "ts": t0 + timedelta(seconds=1), "loaded_at": t0, "x": 7.0, "g": 1, "kept": False},
        ],
    )
    assert mismatches(con, renderers[adapter], case, adapter) == []
    expiry = t0 + timedelta(minutes=1)
    create_table(con, "labels", {"k": "BIGINT", "label_ts": "TIMESTAMP"}, [{"k": 1, "label_ts": t} for t in [t0, t0 + US, expiry, expiry + US]])
    join = renderers[adapter].call("point_in_time_join", "labels", [view_spec(case)], label_columns=["k", "label_ts"])
    got = [row[2:-1] for row in con.execute(join).fetchall()]
    assert got == [
        (None, None, None),  # at t0 itself the event is not yet in [t - 1 min, t)
        (1, 5.0, 0),  # 1 µs later it is; a null g is not counted; the filtered event never is
        (1, 5.0, 0),  # exactly one window later: t - 1 min == t0 is still inside
        (0, None, 0),  # 1 µs past that it has left: count 0, sum of nothing is null
    ]
    assert con.execute("SELECT feature_ts, n FROM history ORDER BY feature_ts").fetchall() == [(t0, 1), (expiry, 0)]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_incremental_runs_equal_a_full_rebuild(adapter, renderers, con):
    """Events loaded later (some placed earlier in time: late arrivals) are merged into the
    history as dbt's delete+insert on (keys, feature_ts) does; the result equals a history
    built from scratch, and the run only produced rows of keys with new events, from their
    earliest new event on."""
    renderer = renderers[adapter]
    for seed in range(40):
        case = random_case(1000 + seed)
        rng = random.Random(seed)
        cut = EPOCH + timedelta(days=30)  # everything loaded before, then a second load after
        for e in case.events:
            if rng.random() < 0.3:
                e["loaded_at"] = cut + timedelta(seconds=rng.randint(1, 1000))
        old = [e for e in case.events if e["loaded_at"] < cut]
        create_table(con, "events", EVENT_TYPES, old)
        con.execute(f"CREATE OR REPLACE TABLE history AS {history_sql(renderer, case)}")
        create_table(con, "events", EVENT_TYPES, case.events)
        con.execute(f"CREATE OR REPLACE TABLE increment AS {history_sql(renderer, case, existing='history')}")
        keys = ", ".join(case.keys)
        matching = " AND ".join(f"history.{c} = i.{c}" for c in [*case.keys, "feature_ts"])
        con.execute(f"DELETE FROM history USING increment AS i WHERE {matching}")
        con.execute("INSERT INTO history SELECT * FROM increment")
        con.execute(f"CREATE OR REPLACE TABLE scratch AS {history_sql(renderer, case)}")
        incremental = sorted(con.execute("SELECT * FROM history").fetchall(), key=repr)
        scratch = sorted(con.execute("SELECT * FROM scratch").fetchall(), key=repr)
        assert len(incremental) == len(scratch), seed
        for got, want in zip(incremental, scratch):
            assert all(same(w, g, adapter, "sum" if isinstance(w, float) else "") for w, g in zip(want, got)), (seed, got, want)
        since: dict[tuple, datetime] = {}
        for e in case.events:
            if e["kept"] and e["loaded_at"] > cut:
                key = tuple(e[k] for k in case.keys)
                since[key] = min(since.get(key, e["ts"]), e["ts"])
        for *key, feature_ts in con.execute(f"SELECT {keys}, feature_ts FROM increment").fetchall():
            assert tuple(key) in since and feature_ts >= since[tuple(key)], (seed, key, feature_ts)


def test_a_run_with_nothing_new_produces_no_rows(renderers, con):
    case = random_case(7)
    create_table(con, "events", EVENT_TYPES, case.events)
    con.execute(f"CREATE OR REPLACE TABLE history AS {history_sql(renderers['duckdb'], case)}")
    assert con.execute(history_sql(renderers["duckdb"], case, existing="history")).fetchall() == []


GOOD = {"name": "n", "function": "count", "window": "1 hour"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"keys": []}, "window_history needs the events relation, keys=[...] and timestamp='<event time column>'"),
        ({"aggregates": GOOD}, "window_history: aggregates must be a non-empty list such as"),
        ({"aggregates": [{"function": "count"}]}, "window_history: aggregate 1 ({'function': 'count'}) needs at least 'name', 'function' and 'window'"),
        ({"aggregates": [GOOD | {"filter": "x > 0"}]}, "window_history: aggregate 'n' has an unknown field 'filter'; its fields are name, function, column, window (filter events with where=)"),
        ({"aggregates": [GOOD, GOOD]}, "window_history: aggregate 'n': the name is already taken"),
        ({"aggregates": [GOOD | {"name": "loaded_at"}]}, "window_history: aggregate 'loaded_at': the name is already taken"),
        ({"aggregates": [GOOD | {"function": "median"}]}, "window_history: aggregate 'n' has function 'median'; use one of count, count_distinct, sum, avg, min, max"),
        ({"aggregates": [GOOD | {"function": "sum"}]}, "window_history: aggregate 'n': function sum needs 'column' (a column or SQL expression of the events)"),
        ({"aggregates": [{"name": "n", "function": "count"}]}, "window_history: aggregate 'n' needs a 'window' such as '30 days' or '15 minutes'"),
        ({"aggregates": [GOOD | {"window": "1 month"}]}, "window_history: aggregate 'n': duration '1 month' is not of the form"),
    ],
)
def test_bad_arguments_fail_with_a_sentence(renderers, arguments, message):
    call = {"keys": ["k"], "timestamp": "ts", "aggregates": [GOOD]} | arguments
    with pytest.raises(FeaturekitError) as error:
        renderers["duckdb"].call("window_history", "events", **call)
    assert str(error.value).startswith(message)
