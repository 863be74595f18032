"""Reading labels: any label column name either passes through untouched or is refused with
one line (never a shadowed row number or a silently renamed column); keys match exactly; label
times are read by the same rule as every other timestamp featurekit takes (parse_utc)."""

from __future__ import annotations

import csv
import re
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
from featurekit.errors import FeaturekitError
from featurekit.labels import READY, ROW, TS, load_labels
from featurekit.project import Project
from featurekit.timestamps import ZONED_PATTERN, parse_utc
from test_point_in_time_oracle import mismatches, oracle, output_columns, python_value, warehouse_rows

# ---------------------------------------------------------------------------------------------
# Adversarial label column names


@pytest.fixture(scope="module")
def churn(built_project):
    """(views of churn_model, their rows in the built warehouse, the join SQL train-set runs)."""
    project = Project(built_project)
    views = featurekit.catalog.resolve(project, feature_set="churn_model")["views"]
    plan = project.macros.call(
        "point_in_time_steps", READY, views, timestamp_column=TS, label_columns=["customer_id", "label_ts"], row_column=ROW
    )
    sql = "\n".join(step for _, step in plan["steps"]) + plan["select"]
    return views, warehouse_rows(built_project, views), sql


def names_to_try(sql: str) -> list[str]:
    """Every identifier the join's SQL uses (a label column named like one must not change it),
    names DuckDB gives meaning to, and names SQL or CSV find awkward."""
    identifiers = sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)))
    return identifiers + [
        "rowid", "ROWID", "RowId", "oid", "__FK_INPUT_ROW", "__fk_c1", "select", "order", "a b", 'say "hi"',
        "it's", "a,b", "ümlaut", "1st", "*", "customer_id_1", "label_ts_1", "Customer_ID", "LABEL_TS", "Plan",
    ]


def write(path: Path, columns: list[str], rows: list[list]) -> None:
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([columns, *rows])
    else:
        arrays = [pa.array([row[i] for row in rows]) for i in range(len(columns))]
        pq.write_table(pa.Table.from_arrays(arrays, names=columns), path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_label_column_name_passes_through_or_is_refused(built_project, churn, tmp_path, data):
    views, view_rows, sql = churn
    extra = data.draw(st.lists(st.sampled_from(names_to_try(sql)), min_size=1, max_size=3), label="extra columns")
    columns = ["customer_id", "label_ts", *extra]
    customers = sorted({r["customer_id"] for r in view_rows[views[0]["ref"]]})[:40] + [10**9]
    times = [datetime(2024, 2, 1), datetime(2024, 4, 15, 12), datetime(2024, 6, 1, 9)]
    rows = []
    for _ in range(data.draw(st.integers(1, 12), label="rows")):
        row = [data.draw(st.sampled_from(customers)), data.draw(st.sampled_from(times))]
        rows.append(row + [data.draw(st.integers(0, 3)) for _ in extra])  # shared values, as row numbers
    source = data.draw(st.sampled_from(["csv", "parquet", "frame"]))
    if source == "frame":
        labels = pd.DataFrame(rows, columns=columns)
    else:
        labels = tmp_path / f"labels.{source}"
        write(labels, columns, [[r[0], str(r[1]) if source == "csv" else r[1], *r[2:]] for r in rows])

    outputs = {c.lower() for c in output_columns(views, [])}
    lowered = [c.lower() for c in columns]
    refused = [c for c in extra if c.lower().startswith("__fk_") or lowered.count(c.lower()) > 1 or c.lower() in outputs]
    if refused:
        with pytest.raises(FeaturekitError) as error:
            featurekit.training_set(labels, feature_set="churn_model", project_dir=built_project)
        assert any(f"'{name}'" in str(error.value) for name in refused), str(error.value)
        assert "\n" not in str(error.value)
        return
    frame = featurekit.training_set(labels, feature_set="churn_model", project_dir=built_project)
    assert list(frame.columns) == output_columns(views, columns)
    actual = [tuple(python_value(v) for v in row) for row in frame.itertuples(index=False)]
    expected = oracle(views, view_rows, [dict(zip(columns, row)) for row in rows], columns, "label_ts")
    assert mismatches(expected, actual, list(frame.columns)) == []


def test_duplicate_names_in_parquet_are_refused(built_project, tmp_path):
    """DuckDB would read the second 'churned' as churned_1; the file's own names are checked."""
    path = tmp_path / "dup.parquet"
    write(path, ["customer_id", "label_ts", "churned", "churned"], [[1, datetime(2024, 5, 1), 0, 1]])
    with pytest.raises(FeaturekitError, match=r"^dup.parquet: column 'churned' appears twice \(columns 3 and 4\); rename or drop one$"):
        featurekit.training_set(path, feature_set="churn_model", project_dir=built_project)


# ---------------------------------------------------------------------------------------------
# Keys match exactly


@pytest.mark.parametrize(
    "keys, problem",
    [
        ([1.0, 2.0], None),  # pandas holds integer keys with gaps as floats
        ([1.0, 1.5], "row 2: key customer_id '1.5' is not a BIGINT like the feature views' customer_id"),
        (["1", "2.0", " 3"], None),
        (["1", "1.5"], "row 2: key customer_id '1.5' is not a BIGINT like the feature views' customer_id"),
        (["1", "1e30"], "row 2: key customer_id '1e30' is not a BIGINT like the feature views' customer_id"),
        (["1", "0x10"], "row 2: key customer_id '0x10' is not a BIGINT like the feature views' customer_id"),
    ],
)
@pytest.mark.parametrize("source", ["parquet", "frame"])
def test_keys_convert_exactly_or_not_at_all(built_project, tmp_path, keys, problem, source):
    rows = [[key, datetime(2024, 5, 1)] for key in keys]
    if source == "frame":
        labels, name = pd.DataFrame(rows, columns=["customer_id", "label_ts"]), "labels"
    else:
        labels, name = tmp_path / "keys.parquet", "keys.parquet"
        write(labels, ["customer_id", "label_ts"], rows)
    if problem:
        with pytest.raises(FeaturekitError, match=f"^{re.escape(f'{name} {problem}')}$"):
            featurekit.training_set(labels, feature_set="churn_model", project_dir=built_project)
    else:
        frame = featurekit.training_set(labels, feature_set="churn_model", project_dir=built_project)
        assert list(frame["customer_id"]) == [int(float(k)) for k in keys]


# ---------------------------------------------------------------------------------------------
# Label times and parse_utc: one rule


def timestamp_texts():
    """Texts near the accepted forms: each part valid or just outside."""
    date = st.tuples(
        st.sampled_from(["0000", "0001", "1969", "2024", "9999"]), st.sampled_from(["01", "02", "12", "13"]),
        st.sampled_from(["01", "29", "30", "31", "1"]),
    ).map("-".join)
    clock = st.tuples(
        st.sampled_from([" ", "T", "t", "  "]), st.sampled_from(["00", "09", "23", "24"]),
        st.sampled_from([":00", ":59", ":60"]),
        st.sampled_from(["", ":00", ":59", ":60", ":07.5", ":07.123456", ":07.1234567", ":07."]),
    ).map("".join)
    offset = st.sampled_from(
        ["", "", "Z", "z", " UTC", "UTC", "+02", "+0200", "+02:00", "-05:30", "+24:00", "+02:7", " +02:00",
         " Europe/Berlin", " America/New_York", " CET"]
    )
    structured = st.tuples(
        st.sampled_from(["", " "]), date, st.one_of(st.just(""), st.tuples(clock, offset).map("".join)), st.sampled_from(["", " ", "\t"])
    ).map("".join)
    return st.one_of(structured, structured, st.text(max_size=12))


def read_label_times(renderers, tmp_path: Path, texts: list[str]):
    """The label times of a CSV holding `texts`, as load_labels reads them (naive UTC), or its error."""
    path = tmp_path / "times.csv"
    write(path, ["label_ts"], [[t] for t in texts])
    with duckdb.connect() as con:
        try:
            load_labels(con, path, "label_ts", {}, renderers["duckdb"])
        except FeaturekitError as e:
            return e
        return [r[0] for r in con.execute(f"SELECT {TS} FROM {READY} ORDER BY {ROW}").fetchall()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(timestamp_texts(), min_size=1, max_size=6))
def test_label_times_read_as_parse_utc_reads_them(renderers, tmp_path, texts):
    """Whatever parse_utc (request times, --now, --as-of) accepts, a label file accepts as the
    same instant, and what it refuses, a label file refuses."""
    texts = [t for t in texts if t.strip() and not set(t) & {"\n", "\r", "\x00"}]  # an empty CSV cell is a null
    parsed = {}
    for text in texts:
        try:
            parsed[text] = parse_utc(text)
        except FeaturekitError:
            parsed[text] = None
    for text in texts:
        if parsed[text] is None:
            assert isinstance(read_label_times(renderers, tmp_path, [text]), FeaturekitError), text
    for zoned in (False, True):  # a file has offsets on all of its times or on none
        group = [t for t in texts if parsed[t] is not None and bool(re.fullmatch(ZONED_PATTERN, t)) == zoned]
        if group:
            assert read_label_times(renderers, tmp_path, group) == [parsed[t] for t in group], group


@pytest.mark.parametrize(
    "text, instant",
    [
        ("2024-03-01", datetime(2024, 3, 1)),
        ("2024-03-01 09:00", datetime(2024, 3, 1, 9)),
        ("2024-03-01T09:00:00.5", datetime(2024, 3, 1, 9, 0, 0, 500000)),
        ("2024-03-01T09:00:00Z", datetime(2024, 3, 1, 9)),
        ("2024-03-01 09:00:00 UTC", datetime(2024, 3, 1, 9)),
        ("2024-03-01 09:00:00+02", datetime(2024, 3, 1, 7)),
        ("2024-03-01T00:30:00-0530", datetime(2024, 3, 1, 6)),
        ("2024-03-01T00:30+01:00", datetime(2024, 2, 29, 23, 30)),
        (datetime(2024, 3, 1, 9, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 3, 1, 7)),
    ],
)
def test_parse_utc_forms(text, instant):
    assert parse_utc(text) == instant


@pytest.mark.parametrize(
    "value, message",
    [
        ("2024-03-01 09:00:00 Europe/Berlin", "request_ts '2024-03-01 09:00:00 Europe/Berlin' names a time zone (Europe/Berlin)"),
        ("2024-02-30", "request_ts '2024-02-30' is not a timestamp"),
        ("20240301T090000", "request_ts '20240301T090000' is not a timestamp"),
        ("0000-12-31", "request_ts '0000-12-31' is outside the years 1 to 9999 in UTC"),
        ("0001-01-01T00:30:00+01:00", "request_ts '0001-01-01T00:30:00+01:00' is outside the years 1 to 9999 in UTC"),
        ("9999-12-31T23:30:00-01:00", "request_ts '9999-12-31T23:30:00-01:00' is outside the years 1 to 9999 in UTC"),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), "request_ts '0001-01-01 00:00:00+01:00' is outside the years 1 to 9999 in UTC"),
    ],
)
def test_parse_utc_refuses(value, message):
    with pytest.raises(FeaturekitError) as error:
        parse_utc(value, "request_ts")
    assert str(error.value).startswith(message)
