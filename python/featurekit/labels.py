"""Reads and checks a label file (CSV or Parquet) or DataFrame into a DuckDB temp view, or
checks a labels table already in the warehouse where it is.

Every problem is reported as one line naming the file, row and column, before any join runs.
Rows are numbered from 1 in file order (a CSV's header is not a row).
"""

from __future__ import annotations

import csv
import sys
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import FeaturekitError
from .project import _ident, _sql_string
from .timestamps import FIRST, LAST, NAIVE_PATTERN, ZONED_PATTERN, not_a_timestamp, out_of_range

# The rows as read, their columns named __fk_c1, __fk_c2, ... by position: no label column
# can then shadow DuckDB's rowid, which numbers them in file order.
RAW = "__fk_labels_raw"
READY = "__fk_labels"
ROW = "__fk_input_row"
TS = "__fk_input_ts"
# Every name featurekit's SQL puts beside the label columns starts with this; label columns
# must not (DuckDB compares names ignoring case).
RESERVED = "__fk_"

_TIME_TYPES = {"TIMESTAMP", "DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"}
_NUMBERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "UHUGEINT", "FLOAT", "DOUBLE"}
_INTEGERS = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT"]  # each converts exactly to the ones after it
_DELIMITERS = {".csv": ",", ".tsv": "\t"}
# A column as dbt's adapter.get_columns_in_relation describes it, for the label_time macro.
LabelColumn = namedtuple("LabelColumn", ["name", "dtype"])


@dataclass
class Labels:
    name: str  # the labels in messages: the file name, 'labels' for a DataFrame, or the table
    columns: list[str]  # label columns, in order, passed through
    rows: int
    in_warehouse: bool = False  # READY is in the warehouse, label columns included


@dataclass
class LabelTable:
    """Label rows in a table of the warehouse: a dbt model, seed or snapshot of the project by
    name, or a relation written as the warehouse's SQL writes it (schema.table)."""

    name: str


def load_labels(
    con: duckdb.DuckDBPyConnection,
    source,
    timestamp_column: str,
    keys: dict[str, str],
    macros,
    needed_by: dict[str, str] | None = None,
) -> Labels:
    """Loads labels into temp view __fk_labels: the label columns (keys cast exactly to the
    views' key types, `keys` mapping column -> SQL type), __fk_input_row (file order, from 1)
    and __fk_input_ts (the label time as a naive UTC timestamp, by the label_time macro of
    `macros`). `needed_by` names, per key column, what joins on it (for the message when the
    labels lack it)."""
    # A DataFrame implies pandas is loaded: never import it (~0.8 s) just to ask.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(source, pandas.DataFrame):
        name, columns = "labels", [str(c) for c in source.columns]
        _check_names(name, columns)
        con.register("__fk_frame", source)
        _copy(con, "__fk_frame", columns)
        con.unregister("__fk_frame")
    else:
        name, columns = _read_file(con, Path(source), timestamp_column, list(keys))
    raw = {column: f"__fk_c{i}" for i, column in enumerate(columns, 1)}
    types = dict(zip(columns, (t for (t,) in con.execute(f"SELECT column_type FROM (DESCRIBE {RAW})").fetchall())))
    for column in [timestamp_column, *keys]:
        if column not in types:
            raise FeaturekitError(_missing(name, column, timestamp_column, columns, needed_by))
    rows = con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]
    if rows == 0:
        raise FeaturekitError(f"{name} has no label rows")
    ts_value, ts_type = _timestamp(con, name, timestamp_column, raw[timestamp_column], types[timestamp_column])
    select = []
    for column in columns:
        if column == timestamp_column:
            value = ts_value
        elif column in keys:
            value = _key(con, name, column, raw[column], types[column], keys[column])
        else:
            value = raw[column]
        select.append(f"{value} AS {_ident(column)}")
    # The label time rule (naive is UTC, zoned is converted) is the dbt package's, applied to
    # the label time column as it passes through.
    utc = macros.call("label_time", timestamp_column, [LabelColumn(timestamp_column, ts_type)])
    # A view: the join's first step copies the label rows once, conversions included.
    con.execute(
        f"CREATE TEMP VIEW {READY} AS SELECT *, {utc} AS {TS} FROM "
        f"(SELECT {', '.join(select)}, rowid + 1 AS {ROW} FROM {RAW})"
    )
    return Labels(name=name, columns=columns, rows=rows)


def load_label_table(source, relation: str, name: str, timestamp_column: str, keys: dict[str, str], macros,
                     needed_by: dict[str, str] | None = None) -> Labels:
    """Label rows already in the warehouse, checked there and made the temp table READY there
    (no row leaves the warehouse): the table's columns with keys widened to the views' key
    types, __fk_input_row numbering the rows by label time and keys (a table has no order of
    its own), and __fk_input_ts, the label time in UTC by the label_time macro. The table's
    types must already be right: a timestamp (or date) label time, keys of the views' type or
    a narrower integer; `source` is the open warehouse (warehouse.py)."""
    try:
        types = source.column_types(relation)
    except Exception as e:  # each engine raises its own; the first line of any says what
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise FeaturekitError(f"{name}: cannot read {relation} in the warehouse ({first}); build it or name another") from None
    columns = list(types)
    _check_names(name, columns)
    for column in [timestamp_column, *keys]:
        if column not in types:
            raise FeaturekitError(_missing(name, column, timestamp_column, columns, needed_by))
    ts_type = types[timestamp_column].upper()
    if ts_type not in _TIME_TYPES | {"TIMESTAMPTZ"}:
        raise FeaturekitError(
            f"{name}: {timestamp_column} holds {ts_type} values, not timestamps; make it a timestamp in the table"
        )
    select = {column: source.quote(column) for column in columns}
    for key, view_type in keys.items():
        label_type = types[key].upper()
        if label_type == view_type:
            continue
        if label_type in _INTEGERS and view_type in _INTEGERS[_INTEGERS.index(label_type):]:
            select[key] = f"cast({source.quote(key)} as {source.sql_type(view_type)})"
            continue
        raise FeaturekitError(
            f"{name}: key {key} is {label_type} but the feature views' {key} is {view_type}; cast it in the table"
        )
    # count(column) skips nulls: one scan finds every empty label time and key
    counted = [timestamp_column, *keys]
    rows, *empties = source.fetchall(
        f"SELECT count(*), {', '.join(f'count({source.quote(c)})' for c in counted)} FROM {relation}"
    )[0]
    if rows == 0:
        raise FeaturekitError(f"{name} has no label rows")
    for column, filled in zip(counted, empties):
        if filled < rows:
            what = f"key {column}" if column in keys else column
            raise FeaturekitError(f"{name}: {rows - filled:,} rows have no {what}; every label needs its time and keys")
    utc = macros.call("label_time", timestamp_column, [LabelColumn(timestamp_column, ts_type)])
    order = ", ".join(source.quote(c) for c in counted)
    source.create_temp_table(
        READY,
        f"SELECT {', '.join(f'{value} AS {source.quote(c)}' for c, value in select.items())}, "
        f"row_number() over (order by {order}) AS {ROW}, {utc} AS {TS} FROM {relation}",
    )
    return Labels(name=name, columns=columns, rows=rows, in_warehouse=True)


def _missing(name: str, column: str, timestamp_column: str, columns: list[str], needed_by: dict[str, str] | None) -> str:
    """The message for a label time or key column the labels lack."""
    if column == timestamp_column:
        what = f"timestamp column '{column}' (name another with --timestamp-column)"
    else:
        what = f"key column '{column}'" + (f", which {needed_by[column]} joins on" if column in (needed_by or {}) else "")
    return f"{name}: no {what}; its columns are {', '.join(columns)}"


def _read_file(con, path: Path, timestamp_column: str, keys: list[str]) -> tuple[str, list[str]]:
    """Reads the file into RAW; (its name in messages, its column names)."""
    name = path.name
    suffix = path.suffix.lower()
    kind = "CSV" if suffix in _DELIMITERS else "Parquet" if suffix in (".parquet", ".pq") else None
    if kind is None:
        raise FeaturekitError(f"{name}: unsupported label file type '{path.suffix}'; use .csv or .parquet")
    if not path.is_file():
        raise FeaturekitError(f"{name}: no such file ({path})")
    if path.stat().st_size == 0:
        raise FeaturekitError(f"{name} is empty; it needs a header and at least one label row")
    delimiter = _DELIMITERS.get(suffix)
    try:
        if kind == "CSV":
            columns = _csv_header(path, name, delimiter)
            _check_names(name, columns)
            # The label time and keys as written: their conversions are checked row by row below.
            types = ", ".join(f"{_sql_string(c)}: 'VARCHAR'" for c in columns if c in (timestamp_column, *keys))
            # The dialect is given (RFC 4180), not guessed: a guess can skip rows or columns.
            reader = (
                f"read_csv({_sql_string(path)}, header = true, skip = 0, delim = {_sql_string(delimiter)}, "
                f"quote = '\"', escape = '\"', comment = '', names = [{', '.join(map(_sql_string, columns))}]"
                + (f", types = {{{types}}})" if types else ")")
            )
        else:
            reader = f"read_parquet({_sql_string(path)})"
            columns = _parquet_columns(con, path)
            _check_names(name, columns)
        _copy(con, reader, columns)
    except duckdb.Error as e:
        if kind == "CSV":
            _check_ragged(path, name, delimiter)
        first = str(e).strip().splitlines()[0]
        raise FeaturekitError(f"{name}: cannot read it as {kind}: {first}") from None
    return name, columns


def _copy(con, reader: str, columns: list[str]) -> None:
    """RAW: the rows of `reader`, its columns renamed by position."""
    described = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    renamed = ", ".join(f"{_ident(d)} AS __fk_c{i}" for i, d in enumerate(described, 1))
    # With insertion order preserved (DuckDB's default), rowid is the row's place in the file.
    con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT {renamed} FROM {reader}")


def _csv_header(path: Path, name: str, delimiter: str) -> list[str]:
    """The header's names as Python's csv module reads them, spaces around them trimmed as DuckDB does."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [column.strip() for column in next(csv.reader(f, delimiter=delimiter), [])]
    except UnicodeDecodeError:
        raise FeaturekitError(f"{name}: not UTF-8 text; save it as UTF-8") from None
    except csv.Error as e:
        raise FeaturekitError(f"{name}: cannot read it as CSV: {e}") from None


def _check_ragged(path: Path, name: str, delimiter: str) -> None:
    """After DuckDB failed to read a CSV: names the first row whose values do not match the
    header, if that is what is wrong."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = (r for r in csv.reader(f, delimiter=delimiter) if r)  # blank lines are not rows
            header = next(records, [])
            ragged = next(((row, len(r)) for row, r in enumerate(records, 1) if len(r) != len(header)), None)
    except (UnicodeDecodeError, csv.Error):
        return  # DuckDB's message says what
    if ragged:
        raise FeaturekitError(
            f"{name} row {ragged[0]} has {ragged[1]} values but the header has {len(header)} columns; "
            "give every row one value per column"
        )


def _parquet_columns(con, path: Path) -> list[str]:
    """The top-level column names as the file has them (DuckDB renames duplicates)."""
    schema = con.execute(f"SELECT name, num_children FROM parquet_schema({_sql_string(path)})").fetchall()
    names, open_children = [], [schema[0][1]]  # per open level, its children not yet seen
    for column, children in schema[1:]:
        if len(open_children) == 1:
            names.append(column)
        open_children[-1] -= 1
        if children:
            open_children.append(children)
        while len(open_children) > 1 and open_children[-1] == 0:
            open_children.pop()
    return names


def _check_names(name: str, columns: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, column in enumerate(columns, 1):
        if not column:
            raise FeaturekitError(f"{name}: column {i} has no name in the header; name it or drop it")
        if column.lower().startswith(RESERVED):
            raise FeaturekitError(
                f"{name}: column '{column}' starts with {RESERVED}, which featurekit reserves for its own columns; rename it"
            )
        first = seen.setdefault(column.lower(), i)
        if first != i:
            other = columns[first - 1]
            if other == column:
                raise FeaturekitError(f"{name}: column '{column}' appears twice (columns {first} and {i}); rename or drop one")
            raise FeaturekitError(
                f"{name}: columns '{other}' and '{column}' differ only in case, which SQL ignores; rename one"
            )


def _timestamp(con, name: str, column: str, raw: str, column_type: str) -> tuple[str, str]:
    """(the label time as passed through, its type): text is read by NAIVE_PATTERN or
    ZONED_PATTERN; every instant must fall within the years 1 to 9999 in UTC."""
    (empty,) = _firsts(con, raw, [f"{raw} IS NULL"])
    if empty:
        raise FeaturekitError(f"{name} row {empty[0]}: {column} is empty; every label needs a time")
    if column_type == "VARCHAR":
        forms = (
            f"regexp_full_match({raw}, {_sql_string(NAIVE_PATTERN)}) AS naive, "
            f"regexp_full_match({raw}, {_sql_string(ZONED_PATTERN)}) AS zoned"
        )
        bad, with_zone, without_zone = _firsts(con, raw, ["NOT (naive OR zoned)", "zoned", "naive"], forms)
        if bad:
            raise FeaturekitError(not_a_timestamp(bad[1], f"{name} row {bad[0]}: {column}", "2024-05-01 09:00:00"))
        if with_zone and without_zone:
            raise FeaturekitError(
                f"{name}: mixed time zones in {column}: row {with_zone[0]} ('{with_zone[1]}') has a UTC offset, "
                f"row {without_zone[0]} ('{without_zone[1]}') has none; write all label times in one form"
            )
        value, column_type = f"trim({raw})", "TIMESTAMP WITH TIME ZONE" if with_zone else "TIMESTAMP"
    elif column_type in _TIME_TYPES:
        value = raw
        column_type = "TIMESTAMP WITH TIME ZONE" if column_type == "TIMESTAMP WITH TIME ZONE" else "TIMESTAMP"
    else:
        raise FeaturekitError(f"{name}: {column} holds {column_type} values, not timestamps")
    first, last = (f"CAST('{t}+00' AS {column_type})" for t in (FIRST, LAST))
    invalid, outside = _firsts(
        con, raw, ["v IS NULL", f"v NOT BETWEEN {first} AND {last}"], f"TRY_CAST({value} AS {column_type}) AS v"
    )
    if invalid:  # text of a day the month does not have
        raise FeaturekitError(not_a_timestamp(invalid[1], f"{name} row {invalid[0]}: {column}", "2024-05-01 09:00:00"))
    if outside:
        raise FeaturekitError(out_of_range(outside[1], f"{name} row {outside[0]}: {column}"))
    return f"CAST({value} AS {column_type})", column_type


def _key(con, name: str, column: str, raw: str, column_type: str, view_type: str) -> str:
    """The key as the views' type, converted exactly: 1.5 is not the BIGINT 2."""
    (empty,) = _firsts(con, raw, [f"{raw} IS NULL"])
    if empty:
        raise FeaturekitError(f"{name} row {empty[0]}: key {column} is empty; every label needs its key")
    if column_type == view_type:
        return raw
    exact = f"TRY_CAST({raw} AS {view_type}) IS NOT NULL"
    if view_type in _NUMBERS or view_type.startswith("DECIMAL"):
        exact += f" AND TRY_CAST({raw} AS DECIMAL(38, 10)) = TRY_CAST(TRY_CAST({raw} AS {view_type}) AS DECIMAL(38, 10))"
    (bad,) = _firsts(con, raw, [f"NOT coalesce({exact}, false)"])
    if bad:
        raise FeaturekitError(
            f"{name} row {bad[0]}: key {column} '{bad[1]}' is not a {view_type} like the feature views' {column}"
        )
    return f"CAST({raw} AS {view_type})"


def _firsts(con, raw: str, conditions: list[str], computed: str = "") -> list:
    """Per condition, (row number, value of `raw` as text) of the first label row matching it,
    or None; one scan for all of them. `computed` adds columns to each row (computed once) that
    the conditions may use."""
    firsts = ", ".join(f"min(__fk_rowid) FILTER (WHERE {condition})" for condition in conditions)
    rows = f"SELECT rowid AS __fk_rowid, *{', ' + computed if computed else ''} FROM {RAW}"
    found = con.execute(f"SELECT {firsts} FROM ({rows})").fetchall()[0]
    matched = ", ".join(str(r) for r in found if r is not None) or "NULL"
    values = dict(con.execute(f"SELECT rowid, CAST({raw} AS VARCHAR) FROM {RAW} WHERE rowid IN ({matched})").fetchall())
    return [None if r is None else (r + 1, values[r]) for r in found]
