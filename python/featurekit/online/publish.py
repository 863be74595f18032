"""`featurekit publish`: copies the online tables into a new immutable DuckDB snapshot with a
JSON manifest, then makes it current with one atomic rename, so that serving never opens the
warehouse and a failed or killed publish leaves the previous snapshot serving.

The manifest carries everything serving needs (the feature sets resolved from the dbt
project, each one's output schema as train-set writes it), so serving needs no dbt project.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import importlib
import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow.parquet as pq

from .. import __version__
from ..catalog import feature_sets, feature_views
from ..errors import FeaturekitError
from ..monitor.freshness import freshness_sla, newest_data_sql
from ..project import Project, _ident, _sql_string
from ..tempfiles import fsync
from . import layout_writer
from .snapshots import SnapshotDir, default_online_dir
from ..warehouse import open_warehouse
from ..timestamps import iso, parse_utc

DEFAULT_KEEP = 5

# What `featurekit refresh` asks dbt to build: the online tables and everything upstream of
# them, without the dbt tests. Those scan whole histories (20 s of a 1M-key refresh) and
# run in the full `dbt build`; what serving relies on, one row per key and instant in the
# rows an online table reads, is checked by every online table build
# (featurekit_online_materialization.sql).
REFRESH_DBT_ARGS = ["--select", "+config.materialized:featurekit_online", "--exclude-resource-type", "test"]


def _quiet(message: str) -> None:
    pass


def publish(
    project_dir=None,
    warehouse=None,
    online_dir=None,
    keep: int = DEFAULT_KEEP,
    as_of=None,
    progress: Callable[[str], None] = _quiet,
) -> dict:
    """Publishes a snapshot of every feature set and returns its manifest.

    By default the snapshot copies the online tables `dbt build` made (models/online/). With
    `as_of` (a UTC time) it runs the same macro, online_rows, at that time instead:
    the serving state as of then, e.g. to replay or backfill."""
    if keep < 1:
        raise FeaturekitError(f"--keep {keep}: keep at least 1 snapshot")
    started = time.monotonic()
    project = Project(project_dir, warehouse)
    snapshots = SnapshotDir(online_dir or default_online_dir(project.root))
    as_of = parse_utc(as_of, "--as-of") if as_of is not None else None
    specs = feature_sets(project)
    if not specs:
        raise FeaturekitError("nothing to publish: the project declares no feature set (an exposure of type ml)")
    views = _views(project, specs)
    snapshots.path.mkdir(parents=True, exist_ok=True)
    with _publish_lock(snapshots):
        snapshots.prune(keep)  # first too: what a killed or failed publish left may fill the disk
        snapshot_id = _new_id(snapshots)
        tmp_db = snapshots.path / f".{snapshot_id}.{os.getpid()}.duckdb.tmp"
        tmp_json = snapshots.path / f".{snapshot_id}.{os.getpid()}.json.tmp"
        tmp_serving = snapshots.path / f".{snapshot_id}.{os.getpid()}.serving.tmp"
        try:
            manifest = _write_snapshot(project, snapshots, snapshot_id, tmp_db, tmp_serving, specs, views, as_of, progress)
            _write_durably(tmp_json, json.dumps(manifest, indent=2) + "\n")
            os.replace(tmp_db, snapshots.database(snapshot_id))
            os.replace(tmp_serving, snapshots.serving(snapshot_id))
            os.replace(tmp_json, snapshots.manifest_path(snapshot_id))  # the snapshot is complete
            snapshots.switch(snapshot_id)
        except (OSError, duckdb.IOException) as e:
            current = snapshots.current_id()
            raise FeaturekitError(
                f"cannot write the snapshot in {snapshots.path}: {_write_failure(e)}; free space there (or publish with a "
                f"lower --keep) and publish again; {f'snapshot {current} stays current' if current else 'nothing was published'}"
            ) from None
        finally:
            for leftover in (tmp_db, tmp_json, tmp_db.with_name(tmp_db.name + ".wal")):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(tmp_serving, ignore_errors=True)
        pruned = snapshots.prune(keep)
    rows = sum(v["rows"] for v in manifest["views"].values())
    progress(
        f"published snapshot {snapshot_id} ({len(views)} views, {rows:,} rows, as of {manifest['as_of']}) "
        f"in {time.monotonic() - started:.1f} s" + (f"; pruned {len(pruned)} old snapshot(s)" if pruned else "")
    )
    return manifest


def rollback(online_dir, to: str | None = None) -> str:
    """Makes the snapshot that was current before the current one (or `to`) current again;
    returns its id. Steps back through what was current, so publish B, rollback, publish C,
    rollback returns to the snapshot before B, never to B. The target must load, as a
    server would load it (check_snapshot), or nothing changes."""
    from .store import check_snapshot  # numpy and pyarrow: not for publish's other callers

    snapshots = SnapshotDir(online_dir)
    with _publish_lock(snapshots):
        current = snapshots.require_current()
        ids = snapshots.ids()
        history = snapshots.history()
        if to is None:
            history.pop()  # the current one
            while history and (history[-1] not in ids or history[-1] == current):
                history.pop()  # pruned since, or current twice in a row
            if not history:
                raise FeaturekitError(f"no snapshot older than the current one ({current}) in {snapshots.path} to roll back to")
            to = history[-1]
        elif to not in ids:
            raise FeaturekitError(f"snapshot {to} is not in {snapshots.path}; its snapshots are {', '.join(ids) or 'none'}")
        else:
            history.append(to)
        check_snapshot(snapshots, to, f"cannot roll back to it; {current} stays current")
        snapshots.switch(to, history)
    return to


def _views(project: Project, specs: list[dict]) -> dict[str, dict]:
    """Every view a feature set uses: its full spec and its online table's relation."""
    models = {
        node["name"]: node
        for node in project.manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model"
    }
    all_views = feature_views(project)
    views = {}
    for spec in specs:
        for view in spec["views"]:
            ref = view["ref"]
            if ref in views:
                continue
            table = f"online_{ref}"
            if table not in models:
                version = f", v={view['version']}" if view["version"] is not None else ""
                raise FeaturekitError(
                    f"feature set {spec['name']} uses {ref}, which has no online table: add models/online/{table}.sql "
                    f"containing {{{{ online_table(ref('{view['name']}'{version})) }}}} and run `featurekit refresh`"
                )
            node = models[table]
            views[ref] = {
                "spec": all_views[ref],
                "relation": node["relation_name"],
                "model": table,
                # the online table's build state (featurekit_online_materialization.sql)
                "state": (node["database"], node["schema"], f"{node['alias']}__fk_state"),
            }
    return views


def _write_snapshot(project, snapshots, snapshot_id, tmp_db, tmp_serving, specs, views, as_of, progress) -> dict:
    # pyarrow imports pandas at its first numpy conversion, in the layout (0.3 s): import it
    # meanwhile, while DuckDB copies the rows
    threading.Thread(target=importlib.import_module, args=("pandas",), name="featurekit-import").start()
    with open_warehouse(project) as source:
        con = source.local  # the snapshot is written from here
        con.execute(f"ATTACH {_sql_string(tmp_db)} AS __fk_snapshot")
        # the store sorts the rows when it loads them: let the copy write in parallel (1.4 -> 1.0 s at 1M keys)
        con.execute("SET preserve_insertion_order = false")
        # serving reads the layout, people and tools the DuckDB file: written uncompressed, it
        # takes 0.6 of 3.5 CPU s less (1M keys, 9 views) for twice the bytes (240 MB, not 128)
        con.execute("SET force_compression = 'uncompressed'")
        con.execute("BEGIN")  # one commit for all tables: written straight to the file, no WAL to replay
        view_records = {}
        for ref, view in views.items():
            progress(f"copying {ref}")
            view_records[ref] = _copy_view(source, project, ref, view, as_of)
        set_records = {spec["name"]: _feature_set_record(source, project, snapshots, spec, view_records) for spec in specs}
        con.execute("COMMIT")
        progress("writing the serving layout")
        serving = layout_writer.write(con, "__fk_snapshot.main", tmp_serving, {"views": view_records, "feature_sets": set_records}, project.macros)
        con.execute("DETACH __fk_snapshot")
        warehouse_name = source.name
    fsync(tmp_db)
    as_ofs = [record["as_of"] for record in view_records.values()]
    return {
        "snapshot_id": snapshot_id,
        "featurekit_version": __version__,
        "built_at": iso(datetime.now(timezone.utc).replace(tzinfo=None)),
        "as_of": min(as_ofs),
        "dbt_manifest_sha256": project.manifest_sha256,
        "warehouse": warehouse_name,
        "source": f"online_rows as of {iso(as_of)}" if as_of else "online tables built by dbt (models/online/)",
        "feature_sets": set_records,
        "views": view_records,
        "serving": serving,
        "database_bytes": tmp_db.stat().st_size,  # a cut file is noticed before it is served
    }


def _read_online_rows(source, project: Project, view: dict, as_of: datetime | None, table: str) -> datetime:
    """The one place publish reads the online rows: the view's online rows into the snapshot's
    `table` (unsorted, the serving layout sorts them), streamed from the warehouse (warehouse.py),
    and the as-of time they hold."""
    spec = view["spec"]
    if as_of is None:
        # the columns online rows are defined to have (an older build's extra column stays behind)
        columns = ", ".join(source.quote(c) for c in project.macros.call("online_columns", spec))
        rows = f"SELECT {columns} FROM {view['relation']}"
    else:
        literal = "cast(" + _sql_string(as_of.isoformat(sep=" ")) + " as timestamp)"
        rows = project.macros.call("online_rows", spec, literal)
    source.copy_to_local(rows, table)
    return as_of or source.fetchall(f"SELECT as_of FROM {_state(source, view)}")[0][0]


def _copy_view(source, project: Project, ref: str, view: dict, as_of: datetime | None) -> dict:
    spec = view["spec"]
    table = f"__fk_snapshot.main.{_ident(ref)}"
    con = source.local
    try:
        view_as_of = _read_online_rows(source, project, view, as_of, table)
    except FeaturekitError:  # the warehouse's own line, naming the target and what to do
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0]
        raise FeaturekitError(
            f"cannot read the online rows of {ref} ({view['relation']}): {first}; run `featurekit refresh` (or `dbt build`)"
        ) from None
    at = "cast(" + _sql_string(view_as_of.isoformat(sep=" ")) + " as timestamp)" if view_as_of else "NULL"
    rows, future = con.execute(f"SELECT count(*), count(*) FILTER (WHERE __fk_at >= {at}) FROM {table}").fetchall()[0]
    max_ts = _newest_served(source, project, spec, view, table, at, as_of)
    key_types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall())
    return {
        "table": ref,
        "model": view["model"],
        "relation": view["relation"] if as_of is None else spec["relation"],
        "keys": spec["keys"],
        "key_types": {key: key_types[key] for key in spec["keys"]},
        "as_of": iso(view_as_of),
        "rows": rows,
        "future_rows": future,
        "max_feature_ts": iso(max_ts),
        # the SLA travels with the snapshot: servers judge staleness without the dbt project
        "freshness": freshness_sla(project.macros, spec),
    }


def _newest_served(source, project: Project, spec: dict, view: dict, table: str, at: str, as_of) -> datetime | None:
    """The newest data the snapshot serves (freshness's rule, data_row): the
    snapshot's own rows hold it, except in a window history, whose online rows keep expiry
    rows (no new data) in place of older events. For those, the online table's build
    recorded it in its state while reading the history anyway; else it is read here."""
    if not spec.get("windowed"):
        return source.local.execute(f"SELECT max(__fk_feature_ts) FROM {table} WHERE __fk_at < {at}").fetchall()[0][0]
    recorded = as_of is None and "newest_data" in source.column_types(_state(source, view))
    if recorded:  # not when built before the state recorded it
        found = source.fetchall(f"SELECT newest_data FROM {_state(source, view)} WHERE as_of = {at}")
        if found:
            return found[0][0]
    return source.fetchall(newest_data_sql(project.macros, spec, at, strictly_before=True))[0][0]


def _state(source, view: dict) -> str:
    """The online table's build state: its as-of time, and a window history's newest data
    (Spark's relations have no database part)."""
    return ".".join(source.quote(part) for part in view["state"] if part is not None)


def _feature_set_record(source, project, snapshots, spec: dict, view_records: dict) -> dict:
    """The feature set as served: its views, keys and output schema. The schema is that of
    the point-in-time join train-set runs (same macro, same Parquet writer) over no rows."""
    keys, key_types = [], {}
    for view in spec["views"]:
        for key in view["keys"]:
            if key not in key_types:
                keys.append(key)
                key_types[key] = view_records[view["ref"]]["key_types"][key]
    labels = "(SELECT {} WHERE false)".format(
        ", ".join([f"CAST(NULL AS {source.sql_type(key_types[k])}) AS {source.quote(k)}" for k in keys]
                  + ["CAST(NULL AS TIMESTAMP) AS __fk_input_ts", "0 AS __fk_input_row"])
    )
    empty_views = [dict(view, relation=f"(SELECT * FROM {view['relation']} LIMIT 0)") for view in spec["views"]]
    sql = project.macros.call(
        "point_in_time_join", labels, empty_views,
        timestamp_column="__fk_input_ts", label_columns=keys, row_column="__fk_input_row",
    )
    tmp = snapshots.path / f".schema.{os.getpid()}.parquet.tmp"
    try:
        source.local.execute(f"COPY ({source.rows(sql)}) TO {_sql_string(tmp)} (FORMAT parquet)")
        schema = pq.read_schema(tmp)
    except duckdb.CatalogException as e:  # a view's own table is gone
        first = str(e).strip().splitlines()[0]
        raise FeaturekitError(
            f"cannot read the feature views of feature set {spec['name']}: {first}; run `featurekit refresh` (or `dbt build`)"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "name": spec["name"],
        "description": spec.get("description"),
        "keys": keys,
        "key_types": key_types,
        "columns": schema.names,
        "types": [str(t) for t in schema.types],
        "arrow_schema": base64.b64encode(schema.serialize().to_pybytes()).decode(),
        "views": spec["views"],
    }


def _write_failure(error: Exception) -> str:
    """Why a write failed, in a few words: DuckDB gives the system's reason on a later line."""
    text = str(error)
    for code, reason in ((errno.ENOSPC, "no space left on the device"), (errno.EDQUOT, "over the disk quota"),
                         (errno.EFBIG, "over the file size limit")):
        if getattr(error, "errno", None) == code or os.strerror(code) in text:
            return reason
    return text.strip().splitlines()[-1] if text.strip() else type(error).__name__


def _new_id(snapshots: SnapshotDir) -> str:
    """A UTC-time id later than every existing one (ids sort by age)."""
    latest = max(snapshots.ids(), default="")
    while True:
        snapshot_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        if snapshot_id > latest:
            return snapshot_id
        time.sleep(0.001)


@contextmanager
def _publish_lock(snapshots: SnapshotDir):
    """One publish or rollback at a time per snapshot directory (the OS drops the lock if the
    process dies)."""
    snapshots.path.mkdir(parents=True, exist_ok=True)
    with open(snapshots.path / ".publish.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write_durably(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
