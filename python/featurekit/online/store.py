"""OnlineStore: feature vectors from the current published snapshot, in microseconds.

A snapshot is opened by memory-mapping its serving layout (layout.py: milliseconds, no
copy; every process serving it shares the pages) and swapped in by one attribute
assignment when a newer one is published, so a call reads one snapshot from start to end
and never waits for a load. Steps 1-2 of the point-in-time contract were done by the
macros when the snapshot was built (online_rows); the rest are the serving rules
(rules.py), applied by each feature set's plan (plans.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, NamedTuple

import duckdb
import pyarrow as pa

from ..errors import FeaturekitError
from ..monitor.freshness import freshness_status
from ..monitor.served_log import ServedLog
from ..timestamps import from_micros, now_micros, parse_utc, to_micros
from .keys import KeyParser
from .layout import Layout
from .plans import Plan
from .snapshots import SnapshotDir

BATCH = 16  # from this many keys a lookup computes them together (Plan.vectors)
log = logging.getLogger("featurekit.online")


class Served(NamedTuple):
    """One lookup: rows of values in `columns` order, all from snapshot `snapshot_id`."""

    feature_set: str
    snapshot_id: str
    request_ts: Any  # naive UTC datetime
    columns: list[str]
    rows: list[list]
    schema: pa.Schema  # the columns' types: those of the train-set Parquet file, then the ages
    row_dict: Callable[[list], dict]  # a row -> {column: value}

    def dicts(self) -> list[dict]:
        """The rows as dicts of column -> value."""
        return list(map(self.row_dict, self.rows))


class OnlineStore:
    """Feature vectors of published feature sets.

    path       the snapshot directory `featurekit publish` writes (online/ in the project)
    log_dir    when set, every served vector is appended to Parquet files there (see served_log)
    snapshot   pin one snapshot id instead of following the current one
    check_every  seconds between checks for a newer snapshot (loaded in the background)

    Values are exact (equal to train-set's) for request times at or after the snapshot's
    as-of time (manifest["as_of"]: the dbt build, or `publish --as-of`); an earlier request
    time is answered from the rows the snapshot holds, which may be newer than it.

    Example:
        store = OnlineStore("online")
        store.get("churn_model", {"customer_id": 42})            # one dict
        store.get("churn_model", [{"customer_id": 42}, 43])      # a list of dicts
        store.get_frame("churn_model", [42, 43], request_ts="2024-05-01T09:00:00Z")
    """

    def __init__(self, path, log_dir=None, snapshot: str | None = None, check_every: float = 1.0):
        self._dir = SnapshotDir(path)
        self._pinned = snapshot is not None
        self._snapshot = _Snapshot.load(self._dir, snapshot or self._dir.require_current())
        self._check_every = check_every
        self._next_check = time.monotonic() + check_every
        self._loading = threading.Lock()
        self.reload_error: str | None = None  # why the current snapshot could not be loaded
        self.failed_snapshot: str | None = None  # and its id; both None while serving the current one
        self.log = ServedLog(log_dir) if log_dir is not None else None

    @property
    def snapshot_id(self) -> str:
        return self._current().id

    @property
    def manifest(self) -> dict:
        return self._current().manifest

    def feature_sets(self) -> dict[str, dict]:
        return self._current().manifest["feature_sets"]

    def columns(self, feature_set: str) -> list[str]:
        """The served columns: keys, then each view's features and <view>__feature_ts (the
        train-set columns), then each view's <view>__age_seconds."""
        return self._current().plan(feature_set).columns

    def keys(self, feature_set: str) -> KeyParser:
        """The parser of the feature set's keys (for lookup(..., parsed=True))."""
        return self._current().plan(feature_set).keys

    def schema(self, feature_set: str) -> pa.Schema:
        return self._current().plan(feature_set).schema

    def freshness(self, now=None) -> dict[str, dict]:
        """Per view of the served snapshot: its newest data's age against the view's freshness
        SLA, by `featurekit freshness`'s rule: {max_feature_ts, age_seconds, status, stale}."""
        now = parse_utc(now, "now") if now is not None else from_micros(now_micros())
        return {
            ref: {
                "max_feature_ts": view.get("max_feature_ts"),
                **freshness_status(
                    view.get("freshness") or {},
                    parse_utc(view["max_feature_ts"]) if view.get("max_feature_ts") else None,
                    now,
                ),
            }
            for ref, view in self.manifest["views"].items()
        }

    def get(self, feature_set: str, keys, request_ts=None):
        """One key (a dict, or a bare value for a single key column) -> one dict; a list of
        keys -> a list of dicts. request_ts defaults to now (UTC)."""
        single = not isinstance(keys, list)
        rows = self.lookup(feature_set, [keys] if single else keys, request_ts).dicts()
        return rows[0] if single else rows

    def get_frame(self, feature_set: str, keys, request_ts=None):
        """A DataFrame whose train-set columns have the types the train-set Parquet file has."""
        served = self.lookup(feature_set, keys if isinstance(keys, list) else [keys], request_ts)
        columns = list(zip(*served.rows)) if served.rows else [[] for _ in served.columns]
        arrays = [pa.array(values, type=field.type) for values, field in zip(columns, served.schema)]
        return pa.Table.from_arrays(arrays, schema=served.schema).to_pandas()

    def lookup(self, feature_set: str, keys: list, request_ts=None, parsed: bool = False) -> Served:
        """The vectors of `keys` (Python values, see keys.py) at request_ts (default now).
        parsed=True: the keys are tuples a KeyParser made, request_ts is request_micros'."""
        snapshot = self._current()
        plan = snapshot.plan(feature_set)
        served_at = now_micros()
        if parsed:
            request_us = served_at if request_ts is None else request_ts
        else:
            request_us = served_at if request_ts is None else request_micros(request_ts)
            keys = plan.keys.many_from_python(keys)
        rows = plan.vectors(keys, request_us) if len(keys) >= BATCH else [plan.vector(key, request_us) for key in keys]
        served = Served(feature_set, snapshot.id, from_micros(request_us), plan.columns, rows, plan.schema, plan.row_dict)
        if self.log is not None:
            self.log.submit(served, plan.logged_schema, served_at)
        return served

    def reload(self) -> str:
        """Loads the current snapshot now if it is not the one being served; returns its id."""
        with self._loading:
            current = self._dir.require_current()
            if current != self._snapshot.id:
                self._snapshot = _Snapshot.load(self._dir, current)
            return current

    def close(self) -> None:
        """Writes out the served-feature log (if any)."""
        if self.log is not None:
            self.log.close()

    def _current(self) -> "_Snapshot":
        """The snapshot to answer from; at most every check_every seconds, starts loading a
        newer one in the background (later calls get it once loaded)."""
        snapshot = self._snapshot
        if self._pinned or time.monotonic() < self._next_check:
            return snapshot
        self._next_check = time.monotonic() + self._check_every
        current = self._dir.current_id()
        if current == snapshot.id:
            self.reload_error = self.failed_snapshot = None  # e.g. rolled back to the one served
        elif current is not None and not self._loading.locked():
            threading.Thread(target=self._load_in_background, name="featurekit-snapshot-load", daemon=True).start()
        return snapshot

    def _load_in_background(self) -> None:
        if not self._loading.acquire(blocking=False):
            return
        current = None
        try:
            current = self._dir.current_id()
            if current is not None and current != self._snapshot.id:
                self._snapshot = _Snapshot.load(self._dir, current)
            self.reload_error = self.failed_snapshot = None
        except Exception as e:  # keep serving the loaded snapshot; retry at the next check
            if (current, str(e)) != (self.failed_snapshot, self.reload_error):
                log.error("cannot load snapshot %s, still serving %s: %s", current, self._snapshot.id, e)
            self.reload_error, self.failed_snapshot = str(e), current
        finally:
            self._loading.release()


def request_micros(value) -> int:
    """A request time (ISO 8601 string or datetime; naive is UTC) in microseconds."""
    return to_micros(parse_utc(value, "request_ts"))


def check_snapshot(snapshots: SnapshotDir, snapshot_id: str, consequence: str) -> None:
    """Raises FeaturekitError unless the snapshot opens as a server opens it, and its DuckDB
    file (what other commands read) is whole and opens too."""
    try:
        manifest = _Snapshot.load(snapshots, snapshot_id).manifest
        database = snapshots.database(snapshot_id)
        try:
            size = database.stat().st_size
            if manifest.get("database_bytes", size) != size:
                raise FeaturekitError(f"its DuckDB file is {size:,} bytes, not {manifest['database_bytes']:,}")
            with duckdb.connect(str(database), read_only=True) as con:
                for view in manifest["views"].values():
                    con.sql(f'SELECT count(*) FROM "{view["table"]}"').fetchall()
        except (duckdb.Error, FeaturekitError) as e:
            raise FeaturekitError(f"snapshot {snapshot_id} in {snapshots.path} is damaged: {str(e).strip().splitlines()[0]}") from None
    except FeaturekitError as e:
        raise FeaturekitError(f"{e}; {consequence}") from None


class _Snapshot:
    """An opened snapshot: its manifest, its mapped layout and a plan per feature set."""

    def __init__(self, snapshot_id: str, manifest: dict, layout: Layout):
        self.id = snapshot_id
        self.manifest = manifest
        self.layout = layout
        self._plans = {name: Plan(spec, layout) for name, spec in manifest["feature_sets"].items()}

    def plan(self, feature_set: str) -> Plan:
        try:
            return self._plans[feature_set]
        except KeyError:
            known = ", ".join(sorted(self._plans)) or "none"
            raise FeaturekitError(f"unknown feature set '{feature_set}'; known feature sets: {known}") from None

    @classmethod
    def load(cls, snapshots: SnapshotDir, snapshot_id: str) -> "_Snapshot":
        manifest = snapshots.manifest(snapshot_id)
        try:
            if "serving" not in manifest:
                raise FeaturekitError("it has no serving layout (published by an older featurekit); publish again")
            layout = Layout(snapshots.serving(snapshot_id), manifest["serving"], snapshot_id)
            return cls(snapshot_id, manifest, layout)
        except (FeaturekitError, KeyError, ValueError, OSError, pa.ArrowException) as e:
            raise FeaturekitError(f"snapshot {snapshot_id} in {snapshots.path} is damaged: {e}") from None
