"""OnlineStore: feature vectors from the current published snapshot, in microseconds.

A snapshot is loaded whole into memory (per view: key -> row position, columns as lists) and
swapped in by one attribute assignment when a newer one is published, so a call reads one
snapshot from start to end and never waits for a load.

Steps 1-2 of the point-in-time contract were done by the macros when the snapshot was
built (featurekit_online_rows): a lookup takes the stored row with the greatest visibility
time before the request time. Steps 3-5 (ttl, request-time features, fill) are applied here
from the view specs the macros produced, mirroring featurekit_feature_columns and
featurekit_elapsed; tests/test_online_parity.py proves the two give identical values.
"""

from __future__ import annotations

import base64
import gc
import threading
import time
from bisect import bisect_left
from operator import itemgetter
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import FeaturekitError
from .freshness import freshness_status
from .served_log import ServedLog
from .snapshots import SnapshotDir
from .timestamps import from_micros, now_micros, parse_utc, to_micros

MICROS = 1_000_000
BATCH = 16  # from this many keys a lookup computes them together (_Plan.vectors)
_VISIBLE_AT = itemgetter(0)


class Served(NamedTuple):
    """One lookup: rows of values in `columns` order, all from snapshot `snapshot_id`."""

    feature_set: str
    snapshot_id: str
    request_ts: Any  # naive UTC datetime
    columns: list[str]
    rows: list[list]
    schema: pa.Schema  # the columns' types: those of the train-set Parquet file, then the ages


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
        self.last_reload_error: str | None = None
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
        served = self.lookup(feature_set, [keys] if single else keys, request_ts)
        rows = [dict(zip(served.columns, row)) for row in served.rows]
        return rows[0] if single else rows

    def get_frame(self, feature_set: str, keys, request_ts=None):
        """A DataFrame whose train-set columns have the types the train-set Parquet file has."""
        served = self.lookup(feature_set, keys if isinstance(keys, list) else [keys], request_ts)
        columns = list(zip(*served.rows)) if served.rows else [[] for _ in served.columns]
        arrays = [pa.array(values, type=field.type) for values, field in zip(columns, served.schema)]
        return pa.Table.from_arrays(arrays, schema=served.schema).to_pandas()

    def lookup(self, feature_set: str, keys: list, request_ts=None) -> Served:
        snapshot = self._current()
        plan = snapshot.plan(feature_set)
        served_at = now_micros()
        request_us = served_at if request_ts is None else to_micros(parse_utc(request_ts, "request_ts"))
        keys = plan.key_rows(keys)
        rows = plan.vectors(keys, request_us) if len(keys) >= BATCH else [plan.vector(key, request_us) for key in keys]
        served = Served(feature_set, snapshot.id, from_micros(request_us), plan.columns, rows, plan.schema)
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
        if current is not None and current != snapshot.id and not self._loading.locked():
            threading.Thread(target=self._load_in_background, name="featurekit-snapshot-load", daemon=True).start()
        return snapshot

    def _load_in_background(self) -> None:
        if not self._loading.acquire(blocking=False):
            return
        try:
            current = self._dir.current_id()
            if current is not None and current != self._snapshot.id:
                self._snapshot = _Snapshot.load(self._dir, current)
            self.last_reload_error = None
        except Exception as e:  # keep serving the loaded snapshot; retry at the next check
            self.last_reload_error = f"{type(e).__name__}: {e}"
        finally:
            self._loading.release()


class _Snapshot:
    """A loaded snapshot: its manifest, an index per view and a plan per feature set."""

    def __init__(self, snapshot_id: str, manifest: dict, indexes: dict):
        self.id = snapshot_id
        self.manifest = manifest
        by_keys: dict[tuple, list] = {}
        for ref, index in indexes.items():
            by_keys.setdefault(tuple(manifest["views"][ref]["keys"]), []).append(index)
        entities = {keys: _Entity(views, len(keys) == 1 and _integer_keys(manifest, keys[0])) for keys, views in by_keys.items()}
        self._plans = {name: _Plan(spec, indexes, entities) for name, spec in manifest["feature_sets"].items()}

    def plan(self, feature_set: str) -> "_Plan":
        try:
            return self._plans[feature_set]
        except KeyError:
            known = ", ".join(sorted(self._plans)) or "none"
            raise FeaturekitError(f"unknown feature set '{feature_set}'; known feature sets: {known}") from None

    @classmethod
    def load(cls, snapshots: SnapshotDir, snapshot_id: str) -> "_Snapshot":
        manifest = snapshots.manifest(snapshot_id)
        path = snapshots.database(snapshot_id)
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as e:
            raise FeaturekitError(f"cannot open snapshot {path}: {e}") from None
        collecting = gc.isenabled()
        gc.disable()  # millions of new objects, none garbage: collecting meanwhile only costs time
        try:
            wanted = _wanted_columns(manifest)
            indexes = {ref: _ViewIndex(con, record, wanted[ref]) for ref, record in manifest["views"].items()}
        finally:
            con.close()
            if collecting:
                gc.enable()
        return cls(snapshot_id, manifest, indexes)


def _integer_keys(manifest: dict, key: str) -> bool:
    """Whether every view keyed by `key` stores it as an integer that fits int64."""
    types = [view["key_types"][key] for view in manifest["views"].values() if view["keys"] == [key]]
    return all(t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT") for t in types)


def _wanted_columns(manifest: dict) -> dict[str, dict[str, pa.DataType]]:
    """Per view, each source column to load with the type it is served in: the output type of
    the feature it feeds, or int64 microseconds for the start of a request-time feature."""
    wanted: dict[str, dict] = {ref: {} for ref in manifest["views"]}
    for spec in manifest["feature_sets"].values():
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(spec["arrow_schema"])))
        for view in spec["views"]:
            for feature in view["features"]:
                if feature["kind"] == "request_time":
                    wanted[view["ref"]][("us", feature["source"])] = pa.int64()
                else:
                    wanted[view["ref"]][("value", feature["source"])] = schema.field(feature["name"]).type
    return wanted


class _ViewIndex:
    """One view's stored rows by key: key -> its row, or for a key with several rows
    (future-dated rows) the list of them in __fk_at order. A row is one tuple (__fk_at and
    feature timestamp in microseconds, the feature timestamp as a datetime, then the source
    columns at `slots`), so a lookup touches one object per view rather than one per
    column: with a million keys, memory access is what a lookup costs. Tuples of plain
    values also drop out of the garbage collector's scans."""

    def __init__(self, con, record: dict, wanted: dict):
        keys = record["keys"]
        table = con.sql(f'SELECT * FROM "{record["table"]}" ORDER BY {", ".join(keys)}, __fk_at').to_arrow_table()
        columns = [_micros(table["__fk_at"]), _micros(table["__fk_feature_ts"]), _values(pc.cast(table["__fk_feature_ts"], pa.timestamp("us")))]
        self.slots = {}
        for (form, source), out_type in wanted.items():
            self.slots[(form, source)] = len(columns)
            columns.append(_micros(table[source]) if form == "us" else _values(pc.cast(table[source], out_type)))
        rows = list(zip(*columns))
        key_values = _values(table[keys[0]]) if len(keys) == 1 else list(zip(*(_values(table[k]) for k in keys)))
        self._batch_columns(columns, wanted)
        # a key's rows are contiguous (sorted): its first row and how many
        self.keys, self.starts, self.counts = _runs(key_values)
        self.by_key = dict(zip(key_values, rows))
        if len(self.by_key) != len(rows):
            self.by_key = {}
            for key, row in zip(key_values, rows):
                found = self.by_key.get(key)
                if found is None:
                    self.by_key[key] = row
                elif type(found) is list:
                    found.append(row)
                else:
                    self.by_key[key] = [found, row]


    def _batch_columns(self, columns: list, wanted: dict) -> None:
        """The same rows as numpy arrays, for batches (_Plan.vectors): __fk_at and the
        feature timestamp in microseconds; `values`, one row per row, each value source
        (column value_at[slot]) and last the feature timestamp, as the very Python objects
        the row tuples hold, with `present` false where null; `micros` and
        `micros_present` for the sources of request-time features."""
        self.at, self.feature_us = np.asarray(columns[0], dtype=np.int64), np.asarray(columns[1], dtype=np.int64)
        sources = [self.slots[key] for key in wanted if key[0] == "value"]
        self.value_at = {slot: j for j, slot in enumerate(sources)}
        self.values = np.empty((len(columns[0]), len(sources) + 1), dtype=object)
        self.present = np.ones(self.values.shape, dtype=bool)
        self.micros, self.micros_present = {}, {}
        for j, slot in enumerate(sources + [2]):
            self.values[:, j] = _objects(columns[slot])
            if slot != 2:
                self.present[:, j] = np.fromiter((v is not None for v in columns[slot]), dtype=bool, count=len(columns[slot]))
        self.nulls = not self.present.all()
        for (form, source) in wanted:
            if form == "us":
                slot = self.slots[(form, source)]
                present = np.fromiter((v is not None for v in columns[slot]), dtype=bool, count=len(columns[slot]))
                self.micros[slot] = np.asarray([v if v is not None else 0 for v in columns[slot]], dtype=np.int64)
                self.micros_present[slot] = present


def _objects(values) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _runs(key_values) -> tuple[list, np.ndarray, np.ndarray]:
    """Sorted key values as runs: the distinct keys, each one's first position and length."""
    keys, starts = [], []
    previous = object()
    for position, key in enumerate(key_values):
        if key != previous:
            keys.append(key)
            starts.append(position)
            previous = key
    starts = np.asarray(starts, dtype=np.int64)
    return keys, starts, np.diff(np.append(starts, len(key_values)))


class _Entity:
    """The keys of the views that share key columns, numbered, and per view the position
    and count of each numbered key's rows (-1 and 0 when it has none): a batch looks each
    key up once here instead of once per view. Integer keys are numbered by their place
    in a sorted array (a vectorised binary search for a batch), others by a dict."""

    def __init__(self, views: list, integer: bool):
        if integer:
            self.sorted = np.unique(np.concatenate([np.asarray(view.keys, dtype=np.int64) for view in views]))
            size = len(self.sorted)
        else:
            self.sorted, self.ids = None, {}
            for view in views:
                for key in view.keys:
                    self.ids.setdefault(key, len(self.ids))
            size = len(self.ids)
        for view in views:
            if integer:
                at = np.searchsorted(self.sorted, np.asarray(view.keys, dtype=np.int64))
            else:
                at = np.fromiter((self.ids[key] for key in view.keys), dtype=np.int64, count=len(view.keys))
            # one more slot, the last: an unknown key (id -1) finds no rows there
            view.first = np.full(size + 1, -1, dtype=np.int64)
            view.first[at] = view.starts
            view.many = np.zeros(size + 1, dtype=np.int64)
            view.many[at] = view.counts
            view.max_rows = int(view.counts.max()) if len(view.counts) else 0
            del view.keys, view.starts, view.counts  # only needed until numbered

    def numbers(self, values: list):
        """The numbers of key values (-1: unknown), or None when an integer entity is given
        something other than plain ints (the caller then looks keys up one by one, which
        compares them as Python does)."""
        if self.sorted is None:
            get = self.ids.get
            return np.fromiter((get(value, -1) for value in values), dtype=np.int64, count=len(values))
        if not all(type(value) is int for value in values):
            return None
        try:
            wanted = np.array(values, dtype=np.int64)
        except OverflowError:
            return None
        if not len(self.sorted):
            return np.full(len(values), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted, wanted), len(self.sorted) - 1)
        return np.where(self.sorted[at] == wanted, at, -1)


def _micros(column: pa.ChunkedArray) -> tuple:
    return _values(pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64()))


def _values(column: pa.ChunkedArray) -> tuple:
    """The column as Python values, None for nulls. Numbers and timestamps go through numpy,
    many times faster than Arrow's to_pylist for a million rows (timestamps above all)."""
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind) or pa.types.is_boolean(kind)):
        return tuple(column.to_pylist())
    nulls = column.null_count
    if nulls and not pa.types.is_timestamp(kind):  # numpy would turn them into NaN (and ints into floats)
        filled = pc.fill_null(column, pa.scalar(False if pa.types.is_boolean(kind) else 0, kind))
    else:
        filled = column  # a null timestamp becomes NaT, and NaT becomes None
    values = filled.to_numpy().tolist()
    if nulls:
        for i in np.flatnonzero(column.is_null().to_numpy()):
            values[i] = None
    return tuple(values)


class _Plan:
    """How to make one feature set's vector: per view its rows, ttl and feature steps, laid
    out for speed (this loop is the whole cost of a lookup)."""

    def __init__(self, spec: dict, indexes: dict, entities: dict):
        self.keys = spec["keys"]
        self.logged_schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(spec["arrow_schema"])))
        ages = [f"{view['ref']}__age_seconds" for view in spec["views"]]
        self.columns = list(self.logged_schema.names) + ages
        self.schema = pa.schema(list(self.logged_schema) + [pa.field(a, pa.float64()) for a in ages])
        self.views = []
        self.entities, self.batch = {}, []  # for vectors()
        for view in spec["views"]:
            index = indexes[view["ref"]]
            steps, fills = [], []
            for feature in view["features"]:
                out_type = self.schema.field(feature["name"]).type
                fill = _fill(feature, out_type)
                fills.append(fill)
                if feature["kind"] == "request_time":
                    unit = feature["unit_seconds"] * MICROS
                    steps.append((index.slots[("us", feature["source"])], unit, fill, _caster(out_type)))
                else:
                    steps.append((index.slots[("value", feature["source"])], None, fill, None))
            plain = all(unit is None for _, unit, _, _ in steps)
            key_at = [self.keys.index(k) for k in view["keys"]]
            entity = entities[tuple(view["keys"])]
            self.entities.setdefault(id(entity), (entity, key_at[0] if len(key_at) == 1 else key_at))
            # its output columns (features, then feature timestamp) from index.values; a
            # request-time feature takes column 0 there and is computed over it after
            last = index.values.shape[1] - 1
            columns = [index.value_at[slot] if unit is None else 0 for slot, unit, _, _ in steps] + [last]
            computed = [(i, slot, unit, fill, cast) for i, (slot, unit, fill, cast) in enumerate(steps) if unit is not None]
            self.batch.append((
                index, id(entity), view["ttl_seconds"] * MICROS if view["ttl_seconds"] else None,
                None if columns == list(range(last + 1)) else np.asarray(columns, dtype=np.int64),
                _objects(fills + [None]), computed,
            ))
            self.views.append((
                index.by_key,
                view["ttl_seconds"] * MICROS if view["ttl_seconds"] else None,
                key_at[0] if len(key_at) == 1 else key_at,
                [slot for slot, *_ in steps] if plain else None,
                steps, fills, fills + [None],
            ))

    def key_rows(self, keys: list) -> list[tuple]:
        """[self.key_values(key) for key in keys], faster for the usual one key column."""
        if len(self.keys) != 1:
            return [self.key_values(key) for key in keys]
        name, rows = self.keys[0], []
        for key in keys:
            if type(key) is not dict:
                rows.append((key,))
            elif len(key) == 1 and name in key:
                rows.append((key[name],))
            else:
                rows.append(self.key_values(key))  # raises the error
        return rows

    def key_values(self, key) -> tuple:
        """A key (a dict of the key columns, or a bare value when there is one) as a tuple."""
        if type(key) is dict:
            if len(key) == len(self.keys):
                try:
                    return tuple([key[k] for k in self.keys])
                except KeyError:
                    pass
            raise FeaturekitError(f"key {key!r} must have exactly the key columns {', '.join(self.keys)}")
        if len(self.keys) != 1:
            raise FeaturekitError(f"a key of this feature set is a dict with {', '.join(self.keys)}, not {key!r}")
        return (key,)

    def vector(self, key: tuple, request_us: int) -> list:
        out = list(key)
        ages = []
        for by_key, ttl, key_at, plain, steps, fills, missing in self.views:
            row = by_key.get(key[key_at] if type(key_at) is int else tuple([key[i] for i in key_at]))
            if row is not None:
                if type(row) is list:  # several rows: the last one visible before the request
                    found = bisect_left(row, request_us, key=_VISIBLE_AT) - 1
                    row = row[found] if found >= 0 else None
                elif row[0] >= request_us:  # a row becomes visible at its __fk_at
                    row = None
            if row is not None and ttl is not None and request_us > row[1] + ttl:
                row = None
            if row is None:
                out += missing
                ages.append(None)
                continue
            if plain is not None:
                values = [row[slot] for slot in plain]
                if None in values:
                    values = [fill if v is None else v for v, fill in zip(values, fills)]
                out += values
            else:
                for slot, unit, fill, cast in steps:
                    value = row[slot]
                    if value is None:
                        value = fill
                    else:
                        if unit is not None:
                            value = (request_us - value) // unit  # featurekit_elapsed: floor of whole units
                        if cast is not None:
                            value = cast(value)
                    out.append(value)
            out.append(row[2])
            ages.append((request_us - row[1]) / MICROS)
        out += ages
        return out


    def vectors(self, keys: list[tuple], request_us: int) -> list[list]:
        """[self.vector(key, request_us) for key in keys], computed a view at a time over the
        whole batch with numpy: one dict probe per key and entity, the same rules and the
        same Python objects as vector() (tests/test_online_store.py compares the two)."""
        n = len(keys)
        ids = {}
        for ref, (entity, at) in self.entities.items():
            found = entity.numbers([key[at] for key in keys] if type(at) is int else [tuple([key[i] for i in at]) for key in keys])
            if found is None:
                return [self.vector(key, request_us) for key in keys]
            ids[ref] = found
        out = np.empty((n, len(self.columns)), dtype=object)
        out[:, :len(self.keys)] = keys
        start, age = len(self.keys), len(self.columns) - len(self.batch)
        for index, entity, ttl, columns, fills, computed in self.batch:
            at, first, count = index.at, index.first[ids[entity]], index.many[ids[entity]]
            # a key's rows are sorted by __fk_at: the last one visible before the request wins
            position = np.where((count > 0) & (at[first] < request_us), first, -1)
            for j in range(1, min(index.max_rows, int(count.max(initial=0)))):
                has = j < count
                candidate = np.where(has, first + j, 0)
                position = np.where(has & (at[candidate] < request_us), candidate, position)
            found = position >= 0
            row = np.where(found, position, 0)
            since = request_us - index.feature_us[row]
            if ttl is not None:
                found &= since <= ttl
            block = index.values.take(row, axis=0)
            if columns is not None:
                block = block[:, columns]
            if index.nulls:
                keep = index.present.take(row, axis=0)
                keep = (keep if columns is None else keep[:, columns]) & found[:, None]
            else:
                keep = found[:, None]
            if not keep.all():
                np.copyto(block, fills, where=~keep)
            for i, slot, unit, fill, cast in computed:  # featurekit_elapsed: floor of whole units
                values = (request_us - index.micros[slot][row]) // unit
                values = (values.astype(np.float64) if cast is float else values).astype(object)
                values[~(found & index.micros_present[slot][row])] = fill
                block[:, i] = values
            width = block.shape[1]
            out[:, start:start + width] = block
            ages = (since / MICROS).astype(object)
            ages[~found] = None
            out[:, age] = ages
            start, age = start + width, age + 1
        return out.tolist()


_NONE = _objects([None])


def _fill(feature: dict, out_type: pa.DataType):
    """The fill default in the column's output type (coalesce(x, 0) on a double gives 0.0)."""
    if feature.get("fill") is None:
        return None
    return pa.scalar(feature["fill"]).cast(out_type).as_py()


def _caster(out_type: pa.DataType):
    if pa.types.is_floating(out_type):
        return float
    if pa.types.is_integer(out_type):
        return None
    raise FeaturekitError(f"request-time features are whole numbers, not {out_type}")
