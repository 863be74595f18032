"""OnlineStore: feature vectors from the current published snapshot, in microseconds.

A snapshot is loaded whole into memory (per view: key -> row position, columns as lists) and
swapped in by one attribute assignment when a newer one is published, so a call reads one
snapshot from start to end and never waits for a load.

Steps 1-2 of the point-in-time contract were done by the macros when the snapshot was
built (online_rows): a lookup takes the stored row with the greatest visibility
time before the request time. Steps 3-5 (ttl, request-time features, fill) are applied here
from the view specs the macros produced, mirroring feature_columns and
elapsed; tests/test_online_parity.py proves the two give identical values.
"""

from __future__ import annotations

import base64
import gc
import logging
import threading
import time
from bisect import bisect_left
from operator import itemgetter
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FeaturekitError
from ..monitor.freshness import freshness_status
from ..monitor.served_log import ServedLog
from .snapshots import SnapshotDir
from ..timestamps import from_micros, now_micros, parse_utc, to_micros

MICROS = 1_000_000
BATCH = 16  # from this many keys a lookup computes them together (_Plan.vectors)
NULL_US = np.iinfo(np.int64).min  # a null in _ViewIndex.ints
_VISIBLE_AT = itemgetter(0)
log = logging.getLogger("featurekit.online")


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


def check_snapshot(snapshots: SnapshotDir, snapshot_id: str, consequence: str) -> None:
    """Raises FeaturekitError unless the snapshot loads as a server would load it."""
    try:
        _Snapshot.load(snapshots, snapshot_id)
    except FeaturekitError as e:
        raise FeaturekitError(f"{e}; {consequence}") from None


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
        for index in indexes.values():
            del index.objects, index.ints  # each plan made its own matrices from them

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
        collecting = gc.isenabled()
        gc.disable()  # millions of new objects, none garbage: collecting meanwhile only costs time
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                wanted = _wanted_columns(manifest)
                indexes = {ref: _ViewIndex(con, record, wanted[ref]) for ref, record in manifest["views"].items()}
        except (duckdb.Error, KeyError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FeaturekitError(f"snapshot {snapshot_id} in {snapshots.path} is damaged: {first}") from None
        finally:
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
        self._columns = columns  # laid out for batches by _Entity (lay_out)
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


    def lay_out(self, numbers: np.ndarray, size: int) -> None:
        """Arrays for batches (_Plan.vectors), given the number of each of this view's keys
        among `size` numbers. A view with one row per key puts each row at its key's number;
        one with several keeps rows in order, with `first` and `many` per number. Either way
        one more position, the last, holds no row: never visible, null values (an unknown
        number, -1, lands there). `ints` has per position __fk_at, the feature timestamp
        and the request-time sources in microseconds (columns `ints_at`), NULL_US for null;
        `objects` the value sources and the feature timestamp (slot 2) as the very Python
        objects the row tuples hold, None for null. The plans make their own matrices of
        both (_Group), then the snapshot drops them."""
        columns, rows = self._columns, len(self._columns[0])
        if len(self.counts) and self.counts.max() > 1:
            place, length = np.arange(rows), rows + 1
            self.first = np.full(size + 1, -1, dtype=np.int64)
            self.first[numbers] = self.starts
            self.many = np.zeros(size + 1, dtype=np.int64)
            self.many[numbers] = self.counts
            self.max_rows = int(self.counts.max())
        else:
            place, length, self.first = numbers, size + 1, None
        micros = [slot for (form, _), slot in self.slots.items() if form == "us"]
        self.ints_at = {slot: 2 + i for i, slot in enumerate(micros)}
        self.ints = np.full((length, 2 + len(micros)), NULL_US, dtype=np.int64)
        self.ints[:, 0] = np.iinfo(np.int64).max  # positions without a row: never visible
        self.ints[:, 1] = 0
        self.ints[place, 0], self.ints[place, 1] = columns[0], columns[1]
        for column, slot in enumerate(micros, 2):
            self.ints[place, column] = [NULL_US if v is None else v for v in columns[slot]]
        if self.first is not None:
            self.at = self.ints[:, 0].copy()  # for positions()
        self.objects = {}
        for slot in [2, *(slot for (form, _), slot in self.slots.items() if form == "value")]:
            self.objects[slot] = np.full(length, None, dtype=object)
            self.objects[slot][place] = _objects(columns[slot])
        del self._columns, self.keys, self.starts, self.counts  # only needed until laid out

    def positions(self, numbers: np.ndarray, request_us: int) -> np.ndarray:
        """Per key number, the position of the row a lookup takes (one with several rows: the
        last one visible before the request, as rows are in __fk_at order)."""
        if self.first is None:
            return numbers
        at, first, count = self.at, self.first[numbers], self.many[numbers]
        position = np.where((count > 0) & (at[first] < request_us), first, -1)
        for j in range(1, min(self.max_rows, int(count.max(initial=0)))):
            has = j < count
            candidate = np.where(has, first + j, 0)
            position = np.where(has & (at[candidate] < request_us), candidate, position)
        return position


def _objects(values) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _runs(key_values) -> tuple[list, np.ndarray, np.ndarray]:
    """Sorted key values as runs: the distinct keys, each one's first position and length."""
    if key_values and type(key_values[0]) is int:  # the usual integer key: numpy, ~50x faster
        try:
            values = np.asarray(key_values, dtype=np.int64)
        except (OverflowError, TypeError):  # beyond int64, or nulls
            pass
        else:
            starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]]))
            return values[starts].tolist(), starts, np.diff(np.append(starts, len(values)))
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
    """The keys of the views that share key columns, numbered: a batch looks each key up
    once here instead of once per view, and each view lays its rows out by number. Integer
    keys that fill at least half of their range are numbered by their distance from the
    smallest (a subtraction for a batch), other integer keys by their place in a sorted
    array (a binary search), others by a dict."""

    def __init__(self, views: list, integer: bool):
        self.sorted = self.low = None
        if integer:
            keys = [np.asarray(view.keys, dtype=np.int64) for view in views]
            known = [k for k in keys if len(k)]
            low, high = (min(k.min() for k in known), max(k.max() for k in known)) if known else (0, 0)
            # the largest view's keys are distinct: at least that many keys in the range
            if known and int(high) - int(low) < 2 * max(map(len, known)):
                self.low, self.high = low, high
                size = int(high - low) + 1
            else:
                self.sorted = np.unique(np.concatenate(keys))
                size = len(self.sorted)
        else:
            self.ids = {}
            for view in views:
                for key in view.keys:
                    self.ids.setdefault(key, len(self.ids))
            size = len(self.ids)
        for i, view in enumerate(views):
            if self.low is not None:
                numbers = keys[i] - self.low
            elif integer:
                numbers = np.searchsorted(self.sorted, keys[i])
            else:
                numbers = np.fromiter((self.ids[key] for key in view.keys), dtype=np.int64, count=len(view.keys))
            view.lay_out(numbers, size)

    def numbers(self, values: list):
        """The numbers of key values (-1: unknown), or None when an integer entity is given
        something other than plain ints (the caller then looks keys up one by one, which
        compares them as Python does)."""
        if self.sorted is None and self.low is None:
            get = self.ids.get
            return np.fromiter((get(value, -1) for value in values), dtype=np.int64, count=len(values))
        if not all(type(value) is int for value in values):
            return None
        try:
            wanted = np.array(values, dtype=np.int64)
        except OverflowError:
            return None
        if self.low is not None:  # compared before subtracting, which could overflow
            return np.where((wanted >= self.low) & (wanted <= self.high), wanted - self.low, -1)
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
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # one object per distinct string: a category column (plan) then costs a few objects,
        # not one per row, and a batch finds them in the CPU cache
        shared = {}
        return tuple([shared.setdefault(value, value) for value in column.to_pylist()])
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
        self.entities, groups = {}, {}  # for vectors()
        for number, view in enumerate(spec["views"]):
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
            # views with one row per key of an entity share their positions: one group
            group = id(entity) if index.first is None else (id(entity), view["ref"])
            groups.setdefault(group, (id(entity), []))[1].append((number, index, steps, view["ttl_seconds"]))
            self.views.append((
                index.by_key,
                view["ttl_seconds"] * MICROS if view["ttl_seconds"] else None,
                key_at[0] if len(key_at) == 1 else key_at,
                [slot for slot, *_ in steps] if plain else None,
                steps, fills, fills + [None],
            ))
        self.groups = [_Group(entity, members) for entity, members in groups.values()]
        # vectors() puts out the keys, each group's values, then each group's ages: the
        # served columns are those in another order when a group is not the views in order
        made = [("key", i) for i in range(len(self.keys))]
        for group in self.groups:
            made += [("value", number, i) for number, _, steps, _ in group.members for i in range(len(steps) + 1)]
        made += [("age", number) for group in self.groups for number in group.views]
        served = [("key", i) for i in range(len(self.keys))]
        served += [("value", number, i) for number, view in enumerate(spec["views"]) for i in range(len(view["features"]) + 1)]
        served += [("age", number) for number in range(len(spec["views"]))]
        self.order = None if made == served else np.asarray([made.index(column) for column in served], dtype=np.int64)

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
                            value = (request_us - value) // unit  # elapsed: floor of whole units
                        if cast is not None:
                            value = cast(value)
                    out.append(value)
            out.append(row[2])
            ages.append((request_us - row[1]) / MICROS)
        out += ages
        return out


    def vectors(self, keys: list[tuple], request_us: int) -> list[list]:
        """[self.vector(key, request_us) for key in keys], computed over the whole batch with
        numpy: each key numbered once per entity, then per group of views one gather of
        their integers and one of their values, the same rules and the same Python objects
        as vector() (tests/test_online_store.py compares the two)."""
        numbers = {}
        for ref, (entity, at) in self.entities.items():
            found = entity.numbers([key[at] for key in keys] if type(at) is int else [tuple([key[i] for i in at]) for key in keys])
            if found is None:
                return [self.vector(key, request_us) for key in keys]
            numbers[ref] = found
        if len(self.keys) == 1:
            blocks = [_objects([key[0] for key in keys])[:, None]]
        else:
            blocks = [np.empty((len(keys), len(self.keys)), dtype=object)]
            blocks[0][:] = keys
        ages = []
        for group in self.groups:
            block, age = group.values(numbers[group.entity], request_us)
            blocks.append(block)
            ages.append(age)
        out = np.concatenate(blocks + ages, axis=1)
        return (out if self.order is None else out[:, self.order]).tolist()


class _Group:
    """Views of a feature set whose rows sit at the same positions (those with one row per
    key of one entity; a view with several rows per key is a group of its own), gathered
    for batches: one take of their integers and one of their values for all of them.
    `members`: (the view's number in the feature set, its index, feature steps, ttl)."""

    def __init__(self, entity: int, members: list):
        self.entity, self.members = entity, members
        self.views = [number for number, *_ in members]
        self.positions = members[0][1].positions
        ints = [index.ints for _, index, _, _ in members]
        self.ints = ints[0] if len(ints) == 1 else np.hstack(ints)
        starts = np.cumsum([0] + [i.shape[1] for i in ints])[:-1]
        self.at, self.feature_us = starts, starts + 1  # columns of self.ints, per member
        ttls = [ttl * MICROS if ttl else np.iinfo(np.int64).max for *_, ttl in members]
        self.ttl = np.asarray(ttls, dtype=np.int64) if any(ttl for *_, ttl in members) else None
        self.matrix = np.hstack([_matrix(index, steps) for _, index, steps, _ in members])
        self.missing = _objects([fill for *_, steps, _ in members for fill in [*(step[2] for step in steps), None]])
        self.owner = np.asarray([m for m, (*_, steps, _) in enumerate(members) for _ in range(len(steps) + 1)], dtype=np.int64)
        firsts = np.cumsum([0] + [len(steps) + 1 for *_, steps, _ in members])  # of self.matrix
        self.computed = [  # (matrix column, ints column, unit, fill, cast) per request-time feature
            (firsts[m] + i, start + index.ints_at[slot], unit, fill, cast)
            for m, ((_, index, steps, _), start) in enumerate(zip(members, starts))
            for i, (slot, unit, fill, cast) in enumerate(steps) if unit is not None
        ]

    def values(self, numbers: np.ndarray, request_us: int) -> tuple[np.ndarray, np.ndarray]:
        """Per key, its members' features and feature timestamps, and their ages."""
        position = self.positions(numbers, request_us)
        ints = self.ints.take(position, axis=0)
        age = request_us - ints[:, self.feature_us]
        seen = ints[:, self.at] < request_us  # a row becomes visible at its __fk_at
        if self.ttl is not None:
            seen &= age <= self.ttl
        block = self.matrix.take(position, axis=0)
        for i, column, unit, fill, cast in self.computed:  # elapsed: floor of whole units
            micros = ints[:, column]
            values = (request_us - micros) // unit
            values = (values.astype(np.float64) if cast is float else values).astype(object)
            values[micros == NULL_US] = fill
            block[:, i] = values
        if not seen.all():
            np.copyto(block, self.missing, where=~seen[:, self.owner])
        ages = (age / MICROS).astype(object)
        ages[~seen] = None
        return block, ages


def _matrix(index: _ViewIndex, steps: list) -> np.ndarray:
    """A view's values for batches at index's positions: a column per feature, the last the
    feature timestamp. Null values, and positions without a row, hold the feature's fill; so
    does a request-time feature's whole column (_Group.values computes its values)."""
    matrix = np.empty((len(index.ints), len(steps) + 1), dtype=object)
    for i, (slot, unit, fill, _) in enumerate(steps):
        if unit is not None:
            matrix[:, i] = fill
            continue
        matrix[:, i] = index.objects[slot]
        if fill is not None:
            matrix[np.equal(index.objects[slot], None), i] = fill
    matrix[:, -1] = index.objects[2]
    return matrix


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
