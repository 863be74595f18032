"""`featurekit parity LOG`: replays the served-feature log offline and compares.

Each logged vector (feature set, keys, request_ts, values) is recomputed by the training-set
path itself (featurekit.training_set with the logged keys and request times as labels: the
same macros, no second join) and compared column by column: exact matches, mismatches,
missing on either side, and for numbers the mean absolute and relative error.

What a replay can prove. It reads the warehouse as it is now; the vector was served from a
snapshot of an earlier warehouse. So, per logged row and feature view, when the served and
replayed vectors were made from different view rows (their <view>__feature_ts differ), the
row is left out of the comparison, and counted with its reason, when:
  - 'newer than the snapshot': the replayed row became visible (its availability time for a
    view that declares one, else its feature timestamp) at or after the snapshot's as_of, so
    it may have arrived after the snapshot was built. A snapshot whose manifest is gone is
    judged by served_at instead (the snapshot was built before it), which is stricter. This
    holds even when both used the same row: a row dated after the as_of was written ahead
    (a window expiry) and is recomputed when events arrive before it;
  - 'warehouse behind the snapshot': the served row is newer than anything the view holds
    now, or was written ahead (dated at or after the as_of, before the request) and the
    replay finds only an older row (the log is replayed against an older warehouse).
Rows that differ for any other reason are mismatches. A limit that remains: a view without
an availability column cannot tell a row that arrived late (feature timestamp before the
snapshot, loaded after it) from a wrong one; declare available_at on views with late data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import resolve
from ..errors import CheckFailed, FeaturekitError
from .freshness import newest_feature_ts
from ..project import Project, _sql_string
from ..online.snapshots import SnapshotDir
from .served_log import LOG_COLUMNS
from ..timestamps import parse_utc
from ..training import training_set
from ..warehouse import open_warehouse

NEWER_THAN_SNAPSHOT = "newer than the snapshot"
WAREHOUSE_BEHIND = "warehouse behind the snapshot"
EXAMPLES = 3


def _quiet(message: str) -> None:
    pass


def log_files(path) -> list[Path]:
    """The served-log Parquet files under `path` (a log directory, a feature set's directory,
    or one file). Files still being written have a hidden temporary name and are skipped."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FeaturekitError(f"served log {path} does not exist")
    files = sorted(path.rglob("served-*.parquet"))
    if not files:
        raise FeaturekitError(f"served log {path} holds no served-*.parquet files (is the server logging there?)")
    return files


def read_log(path, feature_set: str | None = None) -> dict[str, pa.Table]:
    """The logged vectors per feature set, from every file under `path`."""
    files = log_files(path)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # DuckDB prints it to stdout, even into a pipe
    try:
        con.execute("SET TimeZone = 'UTC'")
        listed = "[" + ", ".join(_sql_string(f) for f in files) + "]"
        where = f" WHERE feature_set = {_sql_string(feature_set)}" if feature_set else ""
        table = con.sql(f"SELECT * FROM read_parquet({listed}, union_by_name = true){where}").to_arrow_table()
    except duckdb.Error as e:
        raise FeaturekitError(f"served log {path}: cannot read it: {str(e).strip().splitlines()[0]}") from None
    finally:
        con.close()
    missing = [c for c in LOG_COLUMNS if c not in table.column_names]
    if missing:
        raise FeaturekitError(f"served log {path}: no column '{missing[0]}'; is it a featurekit served-feature log?")
    names = sorted(n for n in pc.unique(table["feature_set"]).to_pylist() if n is not None)
    if feature_set and not names:
        raise FeaturekitError(f"served log {path} has no vectors of feature set '{feature_set}'")
    return {name: table.filter(pc.equal(table["feature_set"], name)) for name in names}


def parity(
    log,
    project_dir=None,
    warehouse=None,
    online_dir=None,
    feature_set: str | None = None,
    max_mismatch_rate: float = 0.0,
    progress: Callable[[str], None] = _quiet,
) -> dict:
    """Replays and compares every logged vector (see the module docstring). Returns the report;
    raises CheckFailed (carrying the report as .report) when any column's mismatch rate is
    above `max_mismatch_rate`."""
    started = time.monotonic()
    project = Project(project_dir, warehouse)
    snapshots = SnapshotDir(online_dir or project.root / "online")
    logged_sets = read_log(log, feature_set)
    progress(f"read {sum(t.num_rows for t in logged_sets.values()):,} logged vectors from {log}")
    report = {
        "log": str(log),
        "max_mismatch_rate": max_mismatch_rate,
        "feature_sets": [
            _compare_set(project, snapshots, name, logged, progress) for name, logged in logged_sets.items()
        ],
    }
    failing = [
        f"{s['name']}.{c['column']}"
        for s in report["feature_sets"]
        for c in s["columns"]
        if c["compared"] and c["mismatch_rate"] > max_mismatch_rate
    ]
    report["failing"] = failing
    report["seconds"] = round(time.monotonic() - started, 3)
    if failing:
        error = CheckFailed(
            f"{len(failing)} column(s) served differently from the replay (mismatch rate above {max_mismatch_rate:g}): "
            + ", ".join(failing)
        )
        error.report = report
        raise error
    return report


def _compare_set(project: Project, snapshots: SnapshotDir, name: str, logged: pa.Table, progress) -> dict:
    spec = resolve(project, feature_set=name)
    keys = list(dict.fromkeys(k for view in spec["views"] for k in view["keys"]))
    for column in [*keys, "request_ts"]:
        nulls = logged[column].null_count if column in logged.column_names else logged.num_rows
        if nulls:
            what = "has no column" if column not in logged.column_names else f"has {nulls:,} row(s) with an empty"
            raise FeaturekitError(f"served log of feature set {name} {what} '{column}'; it cannot be replayed")
    progress(f"replaying {logged.num_rows:,} vectors of {name}")
    labels = logged.select([*keys, "request_ts"]).to_pandas()
    replayed = pa.Table.from_pandas(
        training_set(labels, feature_set=name, project_dir=project.root, warehouse=project.warehouse_override, timestamp_column="request_ts"),
        preserve_index=False,
    )
    progress(f"comparing {name}")
    newest = newest_feature_ts(project, spec["views"], pc.max(logged["request_ts"]).as_py())
    cutoffs, unknown_snapshots = _visibility_cutoffs(snapshots, logged, spec)
    columns, exclusions = [], []
    for view in spec["views"]:
        ts_column = f"{view['ref']}__feature_ts"
        excluded, reasons = _exclusions(project, view, logged, replayed, ts_column, cutoffs[view["ref"]], newest[view["ref"]])
        exclusions.append({"view": view["ref"], "excluded": _count(excluded), "reasons": reasons})
        keep = pc.invert(excluded)
        for column in [*(f["name"] for f in view["features"]), ts_column]:
            columns.append(_compare_column(column, view["ref"], logged, replayed, keep, keys))
    extra = [c for c in logged.column_names if c not in replayed.column_names and c not in LOG_COLUMNS]
    return {
        "name": name,
        "rows": logged.num_rows,
        "columns": columns,
        "exclusions": exclusions,
        "unknown_snapshots": unknown_snapshots,
        "not_in_feature_set": extra,
    }


def _visibility_cutoffs(snapshots: SnapshotDir, logged: pa.Table, spec: dict) -> tuple[dict, list[str]]:
    """Per view, per logged row: the instant from which a view row may not have been in the
    snapshot that served it (the snapshot's as_of, or served_at when its manifest is gone)."""
    ids = [i for i in pc.unique(logged["snapshot_id"]).to_pylist() if i is not None]
    manifests, unknown = {}, []
    for snapshot_id in ids:
        path = snapshots.manifest_path(snapshot_id)
        if path.is_file():
            manifests[snapshot_id] = snapshots.manifest(snapshot_id)
        else:
            unknown.append(snapshot_id)
    served_at = pc.cast(logged["served_at"], pa.timestamp("us"))
    cutoffs = {}
    for view in spec["views"]:
        as_of = {}
        for snapshot_id, manifest in manifests.items():
            record = manifest.get("views", {}).get(view["ref"]) or {}
            value = record.get("as_of") or manifest.get("as_of")
            as_of[snapshot_id] = parse_utc(value, f"snapshot {snapshot_id} as_of")
        if as_of:
            snapshot_ids = pa.array(list(as_of), pa.string())
            values = pa.array(list(as_of.values()), pa.timestamp("us"))
            position = pc.index_in(logged["snapshot_id"], value_set=snapshot_ids)
            known = pc.take(values, position)
            cutoffs[view["ref"]] = pc.if_else(pc.is_null(position), served_at, known)
        else:
            cutoffs[view["ref"]] = served_at
    return cutoffs, unknown


def _exclusions(project, view, logged, replayed, ts_column, cutoff, newest) -> tuple[pa.Array, dict]:
    """A mask of the rows to leave out for this view, and their count per reason."""
    rows = logged.num_rows
    if ts_column not in logged.column_names:
        return pa.array([False] * rows), {}
    served_ts = pc.cast(logged[ts_column], pa.timestamp("us"))
    replay_ts = pc.cast(replayed[ts_column], pa.timestamp("us"))
    differ = pc.fill_null(pc.not_equal(served_ts, replay_ts), True)
    differ = pc.and_(differ, pc.invert(pc.and_(pc.is_null(served_ts), pc.is_null(replay_ts))))
    visible = _visible_from(project, view, replayed, replay_ts)
    # Even under the same feature timestamp: a row dated at or after the as_of was written
    # ahead (a window expiry) and is recomputed when events arrive before it.
    newer = pc.fill_null(pc.greater_equal(visible, cutoff), False)
    if newest is None:  # the view holds nothing now: whatever was served, it lacks
        behind = pc.and_(differ, pc.is_valid(served_ts))
    else:
        behind = pc.fill_null(pc.and_(differ, pc.greater(served_ts, pa.scalar(newest, pa.timestamp("us")))), False)
    # A served row written ahead of the snapshot's as_of (before the request: never a leak)
    # that the replay cannot find, only an older one: this warehouse lacks it too.
    request_ts = pc.cast(logged["request_ts"], pa.timestamp("us"))
    ahead = pc.and_(pc.greater_equal(served_ts, cutoff), pc.less(served_ts, request_ts))
    ahead = pc.and_(ahead, pc.fill_null(pc.greater(served_ts, replay_ts), True))
    behind = pc.or_(behind, pc.fill_null(pc.and_(differ, ahead), False))
    behind = pc.and_(behind, pc.invert(newer))
    reasons = {}
    for reason, mask in ((NEWER_THAN_SNAPSHOT, newer), (WAREHOUSE_BEHIND, behind)):
        if _count(mask):
            reasons[reason] = _count(mask)
    return pc.or_(newer, behind), reasons


def _visible_from(project, view, replayed, replay_ts) -> pa.Array:
    """When each replayed view row became visible: its feature timestamp, or for a view with
    an availability column that column of the row (looked up by key and feature timestamp,
    which identify a row)."""
    if not view["available_at"]:
        return replay_ts
    keys = view["keys"]
    rows = pa.table({**{k: replayed[k] for k in keys}, "__fk_ts": replay_ts, "__fk_pos": pa.array(range(replayed.num_rows))})
    with open_warehouse(project) as source:
        q = source.quote  # the warehouse's quoting: Spark reads "x" as a string
        on = " AND ".join(f"v.{q(k)} = r.{q(k)}" for k in keys)
        source.local.register("__fk_replayed_rows", rows)
        types = source.local.execute("SELECT column_name, column_type FROM (DESCRIBE __fk_replayed_rows)").fetchall()
        source.upload("SELECT * FROM __fk_replayed_rows", "__fk_replayed", {n: source.sql_type(t) for n, t in types})
        # ordered here, by DuckDB: a result that Spark writes as several files has no one order
        found = source.rows(
            f"SELECT r.__fk_pos, v.{q(view['available_at'])} AS __fk_visible FROM __fk_replayed AS r "
            f"LEFT JOIN {view['relation']} AS v ON {on} AND v.{q(view['timestamp'])} = r.__fk_ts"
        )
        return source.local.sql(f"SELECT __fk_visible FROM ({found}) ORDER BY __fk_pos").to_arrow_table().column(0).cast(pa.timestamp("us"))


def _compare_column(column: str, view: str, logged: pa.Table, replayed: pa.Table, keep, keys: list[str]) -> dict:
    replay = replayed[column].filter(keep)
    result = {"column": column, "view": view, "compared": len(replay)}
    if column not in logged.column_names:
        n = len(replay)
        return dict(result, logged=False, matches=0, mismatches=0, missing_served=n, missing_replayed=0,
                    mismatch_rate=1.0 if n else 0.0, mean_abs_error=None, rel_error=None, examples=[])
    served = logged[column].filter(keep)
    served, replay, numeric = _common_type(served, replay)
    served_null, replay_null = pc.is_null(served), pc.is_null(replay)
    both = pc.and_(pc.invert(served_null), pc.invert(replay_null))
    equal = pc.fill_null(pc.equal(served, replay), False)
    matches = pc.or_(equal, pc.and_(served_null, replay_null))
    n = len(replay)
    counts = {
        "matches": _count(matches),
        "mismatches": _count(pc.and_(both, pc.invert(equal))),
        "missing_served": _count(pc.and_(served_null, pc.invert(replay_null))),
        "missing_replayed": _count(pc.and_(replay_null, pc.invert(served_null))),
    }
    mae = rel = None
    if numeric and _count(both):
        diff = pc.abs(pc.subtract(pc.filter(served, both), pc.filter(replay, both)))
        mae = pc.mean(diff).as_py()
        scale = pc.sum(pc.abs(pc.filter(replay, both))).as_py()
        rel = pc.sum(diff).as_py() / scale if scale else (0.0 if not mae else None)
    wrong = pc.invert(matches)
    examples = []
    if counts["matches"] < n:
        rows = logged.filter(keep).filter(wrong).slice(0, EXAMPLES)
        replay_rows = replay.filter(wrong).slice(0, EXAMPLES).to_pylist()
        for row, replayed_value in zip(rows.select([*keys, "request_ts", column]).to_pylist(), replay_rows):
            examples.append({**{k: row[k] for k in keys}, "request_ts": str(row["request_ts"]),
                             "served": _plain(row[column]), "replayed": _plain(replayed_value)})
    return dict(result, logged=True, **counts, mismatch_rate=(n - counts["matches"]) / n if n else 0.0,
                mean_abs_error=mae, rel_error=rel, examples=examples)


def _common_type(served, replay):
    """Both columns in one comparable type; numbers compare by value (an int64 served for a
    double feature is equal when the numbers are), timestamps at microseconds."""
    served, replay = _array(served), _array(replay)
    kinds = (served.type, replay.type)
    if all(pa.types.is_integer(t) for t in kinds):
        return served.cast(pa.int64()), replay.cast(pa.int64()), True
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in kinds):
        return served.cast(pa.float64()), replay.cast(pa.float64()), True
    if all(pa.types.is_timestamp(t) for t in kinds):
        return served.cast(pa.timestamp("us")), replay.cast(pa.timestamp("us")), False
    return served.cast(pa.string()), replay.cast(pa.string()), False


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _count(mask) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _plain(value):
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)
