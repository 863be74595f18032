"""Point-in-time training sets: labels + feature views -> one frame, no future leakage.

The join SQL is rendered from the project's dbt macros (point_in_time_join), the
same text `dbt build` runs for a training model; this module only reads labels, renders,
runs and writes.
"""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import duckdb

from . import __version__
from .catalog import relation, resolve
from .errors import FeaturekitError
from .labels import READY, ROW, TS, Labels, LabelTable, load_label_table, load_labels
from .project import Project, _ident, _sql_string
from .training_output import Output
from .warehouse import open_warehouse

if TYPE_CHECKING:  # pandas costs ~0.8 s to import, and `train-set` never needs it
    import pandas as pd

Progress = Callable[[str], None]

# DuckDB's memory for a training set. Beyond it DuckDB spills to disk rather than growing;
# without a limit it also keeps the blocks of every view already joined (~240 MB per 20M rows).
DEFAULT_MEMORY_LIMIT = "2GB"


def _quiet(message: str) -> None:
    pass


def training_set(
    labels,
    feature_set: str | None = None,
    features: list[str] | None = None,
    project_dir=None,
    warehouse=None,
    timestamp_column: str = "label_ts",
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> pd.DataFrame:
    """The training set for `labels` (a path, DataFrame or LabelTable) as a DataFrame: the label columns
    unchanged and in order, then each view's features and <view>__feature_ts."""
    project = Project(project_dir, warehouse)
    with _prepare(project, labels, feature_set, features, timestamp_column, memory_limit, _quiet) as (source, plan, spec, loaded):
        frame = source.local.execute(_local_rows(source, _run_steps(source, plan, spec, _quiet), loaded, _quiet)).df()
    _check_one_row_per_label(len(frame), loaded)
    return frame


def write_training_set(
    labels,
    output,
    feature_set: str | None = None,
    features: list[str] | None = None,
    project_dir=None,
    warehouse=None,
    timestamp_column: str = "label_ts",
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    progress: Progress = _quiet,
) -> dict:
    """Writes the training set for `labels` (a label file's path, or a LabelTable) to `output`
    (a .parquet or .csv file, or a directory of Parquet part files: a path ending in / or an
    existing directory; training_output.py) and `output`.featureset.json, both atomically: on
    any error neither exists. Returns the sidecar's content."""
    started = time.monotonic()
    in_table = isinstance(labels, LabelTable)
    output = Output(output)
    output.check(None if in_table else Path(labels))
    with output.writing():
        project = Project(project_dir, warehouse)
        prepared = _prepare(project, labels, feature_set, features, timestamp_column, memory_limit, progress,
                            directory=output.is_directory)
        with prepared as (source, plan, spec, loaded):
            sql = _run_steps(source, plan, spec, progress)
            if _engine_writes(source, output.is_directory):
                progress(f"writing {output.path}/ from {source.name}")
                # label columns uploaded from a file are as DuckDB gave them: a Spark TIMESTAMP among
                # them is a zoned label time, kept an instant as in the file output
                source.write_parquet_directory(sql, output.temp, ROW, instants=[] if loaded.in_warehouse else loaded.columns)
            else:
                output.write_local(source.local, _local_rows(source, sql, loaded, progress))
            stats = _view_stats(source.local, output.reader(), spec)
            _check_one_row_per_label(stats["rows"], loaded)
            warehouse_name = source.name
        sidecar = {
            "featurekit_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "feature_set": spec.get("name"),
            "features": features,
            "labels": {
                **({"table": labels.name, "relation": relation(project, labels.name)} if in_table
                   else {"path": str(labels), "sha256": _sha256(Path(labels))}),
                "rows": loaded.rows,
                "columns": loaded.columns,
                "timestamp_column": timestamp_column,
            },
            "output": output.record(stats["rows"]),
            "join": {
                "rule": "per view, the row with the greatest feature timestamp strictly before the label time "
                "(available strictly before it, for views with an availability column); then ttl, "
                "request-time features and fill",
                "label_time": "UTC; naive label times are taken as UTC",
            },
            "views": [_view_record(view, stats["views"][view["ref"]]) for view in spec["views"]],
            "dbt_manifest_sha256": project.manifest_sha256,
            "warehouse": warehouse_name,
        }
        output.commit(sidecar)
    progress(f"wrote {output.path}{'/' if output.is_directory else ''} ({stats['rows']:,} rows) and {output.sidecar.name} "
             f"in {time.monotonic() - started:.1f} s")
    return sidecar


@contextmanager
def _prepare(project: Project, labels, feature_set, features, timestamp_column, memory_limit, progress: Progress,
             directory: bool = False):
    """Opens the warehouse, loads the labels and renders the join's steps for the block.
    `directory`: the output is a directory, which a warehouse that writes it itself
    (_engine_writes) needs every label column of a label file for, not only keys, time and
    row number."""
    if (feature_set is None) == (features is None):
        raise FeaturekitError("give exactly one of --feature-set or --features")
    if features is not None and not features:
        raise FeaturekitError("--features: no feature reference given; name at least one, e.g. customer_orders_v1.orders_30d")
    spec = resolve(project, feature_set=feature_set, features=features)
    with open_warehouse(project) as source:
        con = source.local
        _limit_memory(con, memory_limit)
        keys = _key_types(source, spec)
        if isinstance(labels, LabelTable):
            progress(f"checking the labels table {labels.name} in {source.name}")
            loaded = load_label_table(source, relation(project, labels.name), f"labels table {labels.name}",
                                      timestamp_column, keys, project.macros, _key_users(spec))
        else:
            progress(f"reading labels from {labels}" if isinstance(labels, (str, os.PathLike)) else "reading labels")
            loaded = load_labels(con, labels, timestamp_column, keys, project.macros, _key_users(spec))
        _check_collisions(loaded, spec)
        progress(f"{loaded.rows:,} label rows")
        label_columns = loaded.columns
        if loaded.in_warehouse and not source.local_is_warehouse:
            label_columns = [*loaded.columns, ROW]  # the join carries them; ROW orders them here
        elif _engine_writes(source, directory):
            progress(f"uploading the labels to {source.name}")
            # the label columns as Spark reads DuckDB's Parquet of them (keys included: the
            # types DuckDB cast them to are the views')
            source.upload(f"SELECT * FROM {READY}", READY, {**{c: None for c in loaded.columns}, ROW: "bigint", TS: "timestamp"})
            label_columns = [*loaded.columns, ROW]
        elif not source.local_is_warehouse:
            # the join needs only the keys, the time and the row number; the label columns stay here
            progress(f"uploading the label keys and times to {source.name}")
            columns = [*keys, ROW, TS]
            source.upload(f"SELECT {', '.join(_ident(c) for c in columns)} FROM {READY}", READY,
                          {**{k: source.sql_type(t) for k, t in keys.items()}, ROW: "bigint", TS: "timestamp"})
            label_columns = [ROW]
        plan = project.macros.call(
            "point_in_time_steps",
            READY,
            spec["views"] if source.local_is_warehouse else with_join_plans(source.fetchall, project.macros, spec["views"]),
            timestamp_column=TS,
            label_columns=label_columns,
            row_column=ROW,
            ordered=source.local_is_warehouse,  # else _run_steps orders the rows it reads out
        )
        yield source, plan, spec, loaded


def _run_steps(source, plan: dict, spec: dict, progress: Progress) -> str:
    """Runs the join's steps (point_in_time_steps) into temp tables of the warehouse, one view
    at a time, and returns the query of the warehouse giving the training set. As one
    statement, DuckDB would hold every view's join state at once: about 2 GB per 20M-row view.
    The last step runs inside the final select instead (its one join state then), which saves
    a copy of every row."""
    last, last_sql = plan["steps"][-1]
    views = iter(spec["views"])
    for name, sql in plan["steps"]:
        if name.startswith("__fk_joined_"):
            progress(f"joining feature view {next(views)['ref']} point-in-time")
        if name != last:
            source.create_temp_table(name, sql)
    return f"WITH {last} AS ({last_sql}\n)\n{plan['select']}"


def _engine_writes(source, directory: bool) -> bool:
    """Whether the warehouse writes the output itself: a directory, on an engine with its own
    Parquet writer (Spark); else featurekit's DuckDB writes it from the rows read out."""
    return directory and source.writes_parquet_directories


def _local_rows(source, sql: str, labels: Labels, progress: Progress) -> str:
    """A query of `source.local` giving the rows of `sql` (_run_steps') in label order. A
    warehouse other than DuckDB returns the row numbers and features, which join the label
    columns here unless the labels are in the warehouse."""
    if source.local_is_warehouse:
        return sql
    progress(f"reading the joined rows from {source.name}")
    if labels.in_warehouse:
        return f"SELECT * EXCLUDE ({ROW}) FROM ({source.rows(sql)}) ORDER BY {ROW}"
    label_columns = ", ".join(f"l.{_ident(c)}" for c in labels.columns)
    return (f"SELECT {label_columns}, f.* EXCLUDE ({ROW}) FROM {READY} AS l "
            f"JOIN ({source.rows(sql)}) AS f ON f.{ROW} = l.{ROW} ORDER BY l.{ROW}")


def with_join_plans(fetchall, macros, views: list[dict]) -> list[dict]:
    """The views, each marked with the plans the warehouse offers its join (`join_index`:
    postgres__view_join; `asof_join`: spark__view_join; else the sorted pass), by the macro
    with_join_plans from the answers to its queries, asked here through the seam. Asked at
    every train-set: a view built by an older featurekit may lack the index. `fetchall`
    runs a query in the warehouse; `macros` renders the project's macros."""
    answers = [None if sql is None else tuple(fetchall(sql)[0]) for sql in macros.call("join_plan_queries", views)]
    return macros.call("with_join_plans", views, answers)


def _check_one_row_per_label(rows: int, labels: Labels) -> None:
    """The portable join (default__view_join) takes a view's row by (keys, instant), which the
    history contract makes unique: a view that repeats one gives a label more than one row."""
    if rows != labels.rows:
        raise FeaturekitError(
            f"the join gave {rows:,} rows for the {labels.rows:,} label rows of {labels.name}: a feature view repeats a "
            "(key, feature timestamp); its featurekit.unique_history test names it (dbt test); fix the view and rebuild it"
        )


def _limit_memory(con, memory_limit: str) -> None:
    try:
        con.execute(f"SET memory_limit = {_sql_string(memory_limit)}")
    except duckdb.Error:
        raise FeaturekitError(f"--memory-limit {memory_limit}: not a memory size; write e.g. 2GB or 500MB") from None


def _key_types(source, spec: dict) -> dict[str, str]:
    """Key column -> SQL type (DuckDB's name of it), read from the built views (which also
    proves they are built)."""
    keys: dict[str, str] = {}
    for view in spec["views"]:
        try:
            described = source.column_types(view["relation"])
        except Exception:
            raise FeaturekitError(
                f"feature view {view['ref']} is not built in the warehouse: run `featurekit refresh` (or `dbt build`)"
            ) from None
        for key in view["keys"]:
            keys.setdefault(key, described[key])
    return keys


def _key_users(spec: dict) -> dict[str, str]:
    """Key column -> the first view joining on it, as messages name it."""
    users: dict[str, str] = {}
    for view in spec["views"]:
        for key in view["keys"]:
            users.setdefault(key, f"feature view {view['ref']} (entity {view['entity']})")
    return users


def _check_collisions(labels: Labels, spec: dict) -> None:
    """No label column may share an output's name (SQL compares names ignoring case)."""
    columns = {column.lower(): column for column in labels.columns}
    for view in spec["views"]:
        outputs = [f["name"] for f in view["features"]] + [view["ref"] + "__feature_ts"]
        for name in outputs:
            if name.lower() in columns:
                raise FeaturekitError(
                    f"{labels.name}: column '{columns[name.lower()]}' is also an output of feature view {view['ref']}"
                    f"{'' if columns[name.lower()] == name else f' ({name})'}; rename or drop it"
                )


def _view_stats(con, reader: str, spec: dict) -> dict:
    """Rows written, and per view the rows it matched, counted by DuckDB over what was written
    (`reader`): a stream, whatever wrote it."""
    counts = ", ".join(f"count({view['ref']}__feature_ts)" for view in spec["views"])
    row = con.execute(f"SELECT count(*), {counts} FROM {reader}").fetchall()[0]
    return {
        "rows": row[0],
        "views": {view["ref"]: {"matched": row[i + 1], "missing": row[0] - row[i + 1]} for i, view in enumerate(spec["views"])},
    }


def _view_record(view: dict, stats: dict) -> dict:
    return {
        "view": view["ref"],
        "name": view["name"],
        "version": view["version"],
        "relation": view["relation"],
        "entity": view["entity"],
        "keys": view["keys"],
        "timestamp": view["timestamp"],
        "available_at": view["available_at"],
        "ttl": view["ttl"],
        "features": view["features"],
        "rows_matched": stats["matched"],
        "rows_missing_or_expired": stats["missing"],
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
