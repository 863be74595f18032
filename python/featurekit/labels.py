"""Reads and checks a label file (CSV or Parquet) or DataFrame into a DuckDB temp table.

Every problem is reported as one line naming the file, row and column, before any join runs.
Rows are numbered from 1 in file order (a CSV's header is not a row).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import FeaturekitError
from .project import _ident, _sql_string

RAW = "__fk_labels_raw"
READY = "__fk_labels"
ROW = "__fk_input_row"
TS = "__fk_input_ts"

# A trailing UTC offset or Z: such a timestamp names its own time zone.
_OFFSET = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_TIME_TYPES = {"TIMESTAMP", "DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}


@dataclass
class Labels:
    name: str  # the labels in messages: the file name, or 'labels' for a DataFrame
    columns: list[str]  # label columns, in order, passed through
    rows: int


def load_labels(
    con: duckdb.DuckDBPyConnection, source, timestamp_column: str, keys: dict[str, str], needed_by: dict[str, str] | None = None
) -> Labels:
    """Loads labels into temp view __fk_labels: the label columns (keys cast to the views' key
    types, `keys` mapping column -> SQL type), __fk_input_row (file order, from 1) and
    __fk_input_ts (the label time as a naive UTC timestamp). `needed_by` names, per key column,
    what joins on it (for the message when the labels lack it)."""
    # A DataFrame implies pandas is loaded: never import it (~0.8 s) just to ask.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(source, pandas.DataFrame):
        name = "labels"
        con.register("__fk_frame", source)
        con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT * FROM __fk_frame")
        con.unregister("__fk_frame")
    else:
        name = _read_file(con, Path(source), timestamp_column)
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {RAW})").fetchall())
    columns = list(types)
    for column in [timestamp_column, *keys]:
        if column not in types:
            if column == timestamp_column:
                what = f"timestamp column '{column}' (name another with --timestamp-column)"
            else:
                what = f"key column '{column}'" + (f", which {needed_by[column]} joins on" if column in (needed_by or {}) else "")
            raise FeaturekitError(f"{name}: no {what}; its columns are {', '.join(columns)}")
    rows = con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]
    if rows == 0:
        raise FeaturekitError(f"{name} has no label rows")
    ts_value, ts_utc = _timestamp(con, name, timestamp_column, types[timestamp_column])
    select = []
    for column in columns:
        if column == timestamp_column:
            select.append(f"{ts_value} AS {_ident(column)}")
        elif column in keys:
            select.append(_key(con, name, column, types[column], keys[column]))
        else:
            select.append(_ident(column))
    # A view: the join's first step copies the label rows once, conversions included.
    con.execute(
        f"CREATE TEMP VIEW {READY} AS SELECT {', '.join(select)}, rowid + 1 AS {ROW}, {ts_utc} AS {TS} FROM {RAW}"
    )
    return Labels(name=name, columns=columns, rows=rows)


def _read_file(con, path: Path, timestamp_column: str) -> str:
    name = path.name
    kind = {".csv": "CSV", ".tsv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}.get(path.suffix.lower())
    if kind is None:
        raise FeaturekitError(f"{name}: unsupported label file type '{path.suffix}'; use .csv or .parquet")
    if not path.is_file():
        raise FeaturekitError(f"{name}: no such file ({path})")
    if path.stat().st_size == 0:
        raise FeaturekitError(f"{name} is empty; it needs a header and at least one label row")
    try:
        if kind == "CSV":
            reader = f"read_csv({_sql_string(path)}, header = true)"
            header = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
            if timestamp_column in header:
                # Keep the label time as written: its time zone is decided below, row by row.
                reader = reader[:-1] + f", types = {{{_sql_string(timestamp_column)}: 'VARCHAR'}})"
        else:
            reader = f"read_parquet({_sql_string(path)})"
        # With insertion order preserved (DuckDB's default), rowid is the row's place in the file.
        con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT * FROM {reader}")
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0]
        raise FeaturekitError(f"{name}: cannot read it as {kind}: {first}") from None
    return name


def _timestamp(con, name: str, column: str, column_type: str) -> tuple[str, str]:
    """(the label time column as passed through, the label time as naive UTC)."""
    col = _ident(column)
    empty = _first(con, f"{col} IS NULL", col)
    if empty:
        raise FeaturekitError(f"{name} row {empty[0]}: {column} is empty; every label needs a time")
    if column_type == "TIMESTAMP WITH TIME ZONE":
        return col, f"timezone('UTC', {col})"
    if column_type in _TIME_TYPES:
        return f"CAST({col} AS TIMESTAMP)", f"CAST({col} AS TIMESTAMP)"
    if column_type != "VARCHAR":
        raise FeaturekitError(f"{name}: {column} holds {column_type} values, not timestamps")
    with_zone = _first(con, f"regexp_matches(trim({col}), '{_OFFSET}')", col)
    without_zone = _first(con, f"NOT regexp_matches(trim({col}), '{_OFFSET}')", col)
    if with_zone and without_zone:
        raise FeaturekitError(
            f"{name}: mixed time zones in {column}: row {with_zone[0]} ('{with_zone[1]}') has a UTC offset, "
            f"row {without_zone[0]} ('{without_zone[1]}') has none; write all label times in one form"
        )
    target = "TIMESTAMPTZ" if with_zone else "TIMESTAMP"
    bad = _first(con, f"TRY_CAST(trim({col}) AS {target}) IS NULL", col)
    if bad:
        raise FeaturekitError(
            f"{name} row {bad[0]}: {column} '{bad[1]}' is not a timestamp; write e.g. 2024-05-01 09:00:00"
        )
    value = f"CAST(trim({col}) AS {target})"
    return value, (f"timezone('UTC', {value})" if with_zone else value)


def _key(con, name: str, column: str, column_type: str, view_type: str) -> str:
    col = _ident(column)
    empty = _first(con, f"{col} IS NULL", col)
    if empty:
        raise FeaturekitError(f"{name} row {empty[0]}: key {column} is empty; every label needs its key")
    if column_type == view_type:
        return col
    bad = _first(con, f"TRY_CAST({col} AS {view_type}) IS NULL", col)
    if bad:
        raise FeaturekitError(
            f"{name} row {bad[0]}: key {column} '{bad[1]}' is not a {view_type} like the feature views' {column}"
        )
    return f"CAST({col} AS {view_type}) AS {col}"


def _first(con, condition: str, col: str):
    """(row number, value as text) of the first label row matching condition, or None."""
    found = con.execute(
        f"SELECT rowid + 1, CAST({col} AS VARCHAR) FROM {RAW} WHERE {condition} ORDER BY rowid LIMIT 1"
    ).fetchall()
    return found[0] if found else None
